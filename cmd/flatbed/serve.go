package main

import (
	"fmt"
	"sync/atomic"

	"github.com/spf13/cobra"
)

func newServe(g *globals) *cobra.Command {
	var metricsAddr, listen string
	cmd := &cobra.Command{
		Use:   "serve [SERVICE...]",
		Short: "Run pipeline services until SIGTERM",
		Long: `Run the named services (default: all of resolver, ingester, flattener, thinpusher, notifier)
as one process. With --nats they join that NATS server; without it this process starts
an embedded NATS server listening on --nats-listen, which other 'flatbed serve' processes
and 'flatbed convert --nats' can use. Each service has a durable consumer, so a service
started later picks up what waited for it, and several processes of one service share
its work.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			services := args
			if len(services) == 0 {
				services = allServices
			}
			if err := checkServices(services); err != nil {
				return &exitError{exitUsage, err}
			}
			ctx := cmd.Context()
			p, err := startPipeline(ctx, g, services, listen)
			if err != nil {
				return err
			}
			defer p.close()
			var ready atomic.Bool
			addr, err := serveMetrics(ctx, g.log, metricsAddr, ready.Load, p.bus.Healthy)
			if err != nil {
				return err
			}
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
	cmd.Flags().StringVar(&listen, "nats-listen", "127.0.0.1:4222", "client address of the embedded NATS server (without --nats)")
	return cmd
}
