// Command flatbed publishes container images unpacked into a CernVM-FS style store, as a
// pipeline of services over NATS JetStream. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries a process exit status (DUCC's codes where DUCC has one).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// DUCC's exit codes.
const (
	exitNoPassword    = 101
	exitReadWishlist  = 102
	exitParseWishlist = 103
	exitNoRepository  = 104
	exitSomeFailed    = 1
	exitUsage         = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, err := newRoot().ExecuteContextC(ctx)
	if err == nil {
		return
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(os.Stderr, "flatbed:", ee.err)
		}
		os.Exit(ee.code)
	}
	// Anything else is cobra's: an unknown command or flag, or a wrong number of arguments.
	fmt.Fprintln(os.Stderr, "flatbed:", err)
	if cmd != nil {
		fmt.Fprintf(os.Stderr, "usage: %s\nrun '%s --help' for more\n", cmd.UseLine(), cmd.CommandPath())
	}
	os.Exit(exitUsage)
}
