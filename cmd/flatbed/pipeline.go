package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/notification"
	"flatbed.dev/services/exporter"
	"flatbed.dev/services/flattener"
	"flatbed.dev/services/frontdoor"
	"flatbed.dev/services/ingester"
	lazystage "flatbed.dev/services/lazy"
	"flatbed.dev/services/notifier"
	"flatbed.dev/services/relocator"
	"flatbed.dev/services/resolver"
	"flatbed.dev/services/thinpusher"
)

// allServices in pipeline order.
var allServices = []string{resolver.Name, ingester.Name, flattener.Name, thinpusher.Name, relocator.Name, lazystage.Name, exporter.Name, notifier.Name}

// The stages the wishes of convert (the store and the thin image) and of relocate pass.
var (
	convertStages  = []string{resolver.Name, ingester.Name, flattener.Name, thinpusher.Name, notifier.Name}
	relocateStages = []string{resolver.Name, relocator.Name, notifier.Name}
)

// pipeline is a bus connection and, maybe, an embedded NATS server and services.
type pipeline struct {
	bus      *bus.Bus
	embedded *bus.Embedded
	closers  []func()
}

// startPipeline connects to NATS (or starts the embedded server; listen is its client
// address, "" for in-process only) and registers the named services.
func startPipeline(ctx context.Context, g *globals, services []string, listen string) (*pipeline, error) {
	p := &pipeline{}
	var connect func(name string) (*nats.Conn, error)
	streamMax := g.streamMax // 0 with --nats: keep the server's stream as it is
	if g.natsURL != "" {
		url := g.natsURL
		connect = func(name string) (*nats.Conn, error) {
			// Reconnect for ever; a server that stops answering without closing the
			// connection is noticed within a few seconds (pings every 2s, two may be
			// unanswered), so /readyz follows it. The bus logs every change.
			nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
				nats.PingInterval(2*time.Second), nats.MaxPingsOutstanding(2))
			if err != nil {
				return nil, fmt.Errorf("connecting to NATS at %s: %w", url, err)
			}
			return nc, nil
		}
	} else {
		port := 0
		if listen != "" {
			_, ps, err := net.SplitHostPort(listen)
			if err != nil {
				return nil, fmt.Errorf("--nats-listen %q: %w", listen, err)
			}
			fmt.Sscan(ps, &port)
		}
		lock, err := lockStateDir(g.stateDir) // one embedded server per state directory
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, lock.release)
		dir := filepath.Join(g.stateDir, "jetstream")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			p.close()
			return nil, fmt.Errorf("creating the state directory: %w", err)
		}
		ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: dir, Port: port, Logger: g.log})
		if err != nil {
			p.close()
			return nil, err
		}
		p.embedded = ns
		p.closers = append(p.closers, ns.Shutdown)
		if streamMax, err = embeddedStreamMax(ns, g.streamMax, dir); err != nil {
			p.close()
			return nil, err
		}
		g.log.Info("embedded NATS storage", "state", dir, "max_store", bus.FormatBytes(ns.MaxStore()), "stream_max", bus.FormatBytes(streamMax))
		connect = ns.Connect
		if u := ns.URL(); u != "" {
			lock.listening(u)
			g.log.Info("embedded NATS listening", "url", u, "state", dir)
		}
	}
	b, err := bus.New(ctx, bus.Options{Connect: connect, Source: "flatbed", Logger: g.log, RetryBase: g.retryBase, Replicas: g.replicas,
		StreamMaxBytes: streamMax, ClusterWait: g.natsWait})
	if err != nil {
		p.close()
		return nil, err
	}
	p.bus = b
	for _, name := range services {
		if err := register(ctx, g, b, name); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// embeddedStreamMax is the pipeline stream's limit on the embedded server: --stream-max-bytes
// when given (it must fit in what the server may store), else its share of the server's store,
// which is sized to the state directory's file system.
func embeddedStreamMax(ns *bus.Embedded, flag int64, dir string) (int64, error) {
	if flag == 0 {
		return bus.StreamShare(ns.MaxStore()), nil
	}
	if flag > ns.MaxStore() {
		return 0, &exitError{exitSomeFailed, fmt.Errorf("--stream-max-bytes %d (%s) does not fit: the embedded NATS server may store %s in %s "+
			"(%.0f%% of its file system's free space and of what it holds already); choose less, or a --state-dir with more room",
			flag, bus.FormatBytes(flag), bus.FormatBytes(ns.MaxStore()), dir, bus.StoreFraction*100)}
	}
	return flag, nil
}

func register(ctx context.Context, g *globals, b *bus.Bus, name string) error {
	log := g.log.With("service", name)
	descs, err := b.Descriptions(ctx)
	if err != nil {
		return err
	}
	reg, err := g.registryOptions()
	if err != nil {
		return err
	}
	reg = append(reg, g.registryAuth...) // lazy -u: credentials for the stages in this process only
	switch name {
	case resolver.Name:
		locks, err := b.Locks(ctx)
		if err != nil {
			return err
		}
		return (&resolver.Service{StoreRoot: g.storeRoot, Bus: b, Log: log, Registry: reg, MaxAttempts: g.maxAttempts, MaxLayers: g.maxLayers, Descriptions: descs,
			TrustStore: g.trustStore, Locks: locks, CVMFS: g.publisherFunc(ctx, locks)}).Register(ctx, b)
	case ingester.Name:
		locks, err := b.Locks(ctx)
		if err != nil {
			return err
		}
		return (&ingester.Service{StoreRoot: g.storeRoot, Bus: b, Log: log, Registry: reg, Concurrency: g.jobs, MaxAttempts: g.maxAttempts, Locks: locks, MaxLayerBytes: g.maxLayer,
			CVMFS: g.publisherFunc(ctx, locks), Progress: g.layerProgress()}).Register(ctx, b)
	case flattener.Name:
		locks, err := b.Locks(ctx)
		if err != nil {
			return err
		}
		return (&flattener.Service{StoreRoot: g.storeRoot, Bus: b, Log: log, MaxAttempts: g.maxAttempts, Locks: locks, Descriptions: descs,
			CopyFiles: g.flatFiles == "copy", CVMFS: g.publisherFunc(ctx, locks)}).Register(ctx, b)
	case thinpusher.Name:
		return (&thinpusher.Service{Bus: b, Log: log, Registry: reg, MaxAttempts: g.maxAttempts, Descriptions: descs}).Register(ctx, b)
	case relocator.Name:
		return (&relocator.Service{Bus: b, Log: log, Registry: reg, MaxAttempts: g.maxAttempts}).Register(ctx, b)
	case lazystage.Name:
		dedup, err := lazyDedup(ctx, g)
		if err != nil {
			return err
		}
		return (&lazystage.Service{Bus: b, Log: log, Registry: reg, MaxAttempts: g.maxAttempts, Concurrency: g.lazyConcurrency, TempDir: g.lazyTempDir,
			Dedup: dedup}).Register(ctx, b)
	case exporter.Name:
		return (&exporter.Service{Bus: b, Log: log, Registry: reg, MaxAttempts: g.maxAttempts}).Register(ctx, b)
	case notifier.Name:
		endings, err := b.Wishes(ctx)
		if err != nil {
			return err
		}
		s := &notifier.Service{StoreRoot: g.storeRoot, Bus: b, Log: log, Endings: endings}
		if g.notification != "" {
			f, err := notification.Open(g.notification)
			if err != nil {
				return err
			}
			s.Lines = f
		}
		return s.Register(ctx, b)
	case frontdoor.Name:
		return registerFrontdoor(ctx, g, b, log)
	}
	return fmt.Errorf("unknown service %q: choose from %s", name, strings.Join(allServices, ", "))
}

func checkServices(names []string) error {
	for _, n := range names {
		if !slices.Contains(serveServices, n) {
			return fmt.Errorf("unknown service %q: choose from %s", n, strings.Join(serveServices, ", "))
		}
	}
	return nil
}

func (p *pipeline) close() {
	if p.bus != nil {
		_ = p.bus.Close()
	}
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
}

// serveMetrics serves /metrics, /healthz and /readyz on addr (loopback by default). /readyz
// answers 200 once ready says so and while healthy (the bus's NATS connections) has no
// complaint: it fails within seconds of losing the server and recovers when it is back.
// /metrics never waits for NATS.
func serveMetrics(ctx context.Context, log *slog.Logger, addr string, ready func() bool, healthy func() error) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("metrics address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.DefaultGatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: starting", http.StatusServiceUnavailable)
			return
		}
		if err := healthy(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	srv := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return ln.Addr().String(), nil
}
