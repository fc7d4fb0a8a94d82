// Command flatbed publishes container images unpacked into a CernVM-FS style store, as a
// pipeline of services over NATS JetStream. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

// exitError carries a process exit status (DUCC's codes where DUCC has one).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// DUCC's exit codes, and flatbed's 1 and 2.
const (
	exitNoPassword    = 101
	exitReadWishlist  = 102
	exitParseWishlist = 103
	exitNoRepository  = 104
	exitSomeFailed    = 1 // an image failed, or the run itself did (NATS, a port in use, …)
	exitUsage         = 2
)

// exitCodesHelp ends the help of the commands that convert.
const exitCodesHelp = `Exit status:
  0    every image converted (or its error matches ignoreErrors)
  1    an image failed, or the run did (NATS unreachable or refusing, a port in use, …)
  2    the command line is wrong (unknown command or flag, bad flag value, argument count)
  101  the registry credentials set-up is incomplete (DUCC_<R>_USER without DUCC_<R>_PASS, …)
  102  the wishlist cannot be read
  103  the wishlist cannot be parsed (or an IMAGE/REPO argument is invalid)
  104  the repository does not exist (under /cvmfs: create it with cvmfs_server mkfs)
  130  interrupted by SIGINT before every image had a result (143: by SIGTERM)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns its exit status. Only a wrong command line
// gets the usage text and status 2: a command that ran and failed says what failed and
// what to do, with status 1 or DUCC's 101-104.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		// Every error a command returns is an exitError (see runtimeFailures): what is left
		// is cobra's own, an unknown command or flag, a bad flag value or argument count.
		ee = &exitError{exitUsage, err}
	}
	if ee.err != nil {
		fmt.Fprintln(stderr, "flatbed:", ee.err)
	}
	if ee.code == exitUsage && cmd != nil {
		fmt.Fprintf(stderr, "usage: %s\nrun '%s --help' for more\n", cmd.UseLine(), cmd.CommandPath())
	}
	return ee.code
}

// runtimeFailures makes every error returned by the commands under c a runtime failure
// (status 1, with what to do where flatbed knows it) unless it already has its status.
func runtimeFailures(c *cobra.Command) {
	wrap := func(f func(*cobra.Command, []string) error) func(*cobra.Command, []string) error {
		if f == nil {
			return nil
		}
		return func(cmd *cobra.Command, args []string) error {
			err := f(cmd, args)
			var ee *exitError
			if err == nil || errors.As(err, &ee) {
				return err
			}
			return &exitError{exitSomeFailed, explain(err)}
		}
	}
	c.PersistentPreRunE = wrap(c.PersistentPreRunE)
	c.RunE = wrap(c.RunE)
	for _, sub := range c.Commands() {
		runtimeFailures(sub)
	}
}

// explain adds what to do to the failures whose cause flatbed can name.
func explain(err error) error {
	var jsErr jetstream.JetStreamError
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount), errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w: no JetStream answered; if the NATS server runs without JetStream, start it with -js (nats-server -js -sd DIR) or enable JetStream for this account", err)
	case errors.As(err, &jsErr):
		return fmt.Errorf("%w: the NATS server refused a JetStream request; its log says why (no room for the streams, a stream of another configuration, a cluster without quorum), fix that or point --nats at another server", err)
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired), errors.Is(err, nats.ErrAuthRevoked):
		return fmt.Errorf("%w: put the NATS credentials in the --nats URL (nats://user:password@host:4222) or ask the server's operator for access", err)
	case errors.Is(err, nats.ErrNoServers), errors.Is(err, nats.ErrConnectionClosed):
		return fmt.Errorf("%w: is the NATS server running? start it (nats-server -js, or flatbed serve without --nats) or fix --nats", err)
	}
	return err
}
