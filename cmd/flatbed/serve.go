package main

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
)

func newServe(g *globals) *cobra.Command {
	var metricsAddr, listen string
	cmd := &cobra.Command{
		Use:   "serve [SERVICE...]",
		Short: "Run pipeline services until SIGTERM",
		Long: `Run the named services (default: all of resolver, ingester, flattener, thinpusher, relocator, lazy, exporter, notifier, frontdoor)
as one process. With --nats they join that NATS server, waiting up to --nats-wait for it to
come up; without it this process starts an embedded NATS server listening on --nats-listen,
which other 'flatbed serve' processes and 'flatbed convert --nats' can use. Each service has
a durable consumer, so a service started later picks up what waited for it, and several
processes of one service share its work. The frontdoor serves the HTTP API (wishes, image
states, registry webhooks) on --http-addr behind the bearer token of --token-file.

Exit status: 0 after SIGTERM, 1 when serving fails (NATS unreachable or refusing, a port in
use), 2 when the command line is wrong.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			services := args
			if len(services) == 0 {
				services = serveServices
			}
			if err := checkServices(services); err != nil {
				return &exitError{exitUsage, err}
			}
			ctx := cmd.Context()
			// The addresses are checked before anything starts, so that a port in use fails
			// at once and names itself.
			var p *pipeline
			var ready atomic.Bool // /readyz asks healthy only once ready, when p is set
			addr, err := serveMetrics(ctx, g.log, metricsAddr, ready.Load, func() error { return p.bus.Healthy() })
			if err != nil {
				return fmt.Errorf("%w: choose a free address with --metrics-addr (127.0.0.1:0 takes any free port)", err)
			}
			if g.natsURL == "" {
				if err := checkListen(listen); err != nil {
					return err
				}
			}
			p, err = startPipeline(ctx, g, services, listen)
			if err != nil {
				return err
			}
			defer p.close()
			go func() {
				<-p.bus.Running()
				ready.Store(true)
				g.log.Info("serving", "services", services, "metrics", "http://"+addr+"/metrics", "store", g.storeRoot)
			}()
			if err := p.bus.Run(ctx); err != nil {
				return fmt.Errorf("running services: %w", err)
			}
			g.log.Info("stopped")
			return nil
		},
	}
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "127.0.0.1:0", "address for /metrics, /healthz and /readyz")
	addFrontdoorFlags(cmd.Flags())
	cmd.Flags().StringVar(&listen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server (without --nats)")
	return cmd
}

// checkListen fails when the embedded NATS server could not listen on addr (it listens on
// the loopback interface, at addr's port).
func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return &exitError{exitUsage, fmt.Errorf("--nats-listen %q: %w", addr, err)}
	}
	loopback := net.JoinHostPort("127.0.0.1", port)
	ln, err := net.Listen("tcp", loopback)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("--nats-listen %s: the address is in use, by another NATS server or flatbed serve: join it with --nats nats://%s, stop it, or choose another address with --nats-listen", addr, loopback)
		}
		return fmt.Errorf("--nats-listen %s: %w", addr, err)
	}
	return ln.Close()
}
