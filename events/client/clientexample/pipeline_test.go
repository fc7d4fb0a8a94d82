package clientexample_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"flatbed.dev/events/bus"
	"flatbed.dev/services/flattener"
	"flatbed.dev/services/ingester"
	"flatbed.dev/services/notifier"
	"flatbed.dev/services/resolver"
	"flatbed.dev/services/thinpusher"
)

// startPipeline runs what an operator runs (flatbed serve): a NATS server listening on a
// loopback port, keeping its state in dir, and the five services with their store in
// dir/store. It returns the server's URL.
func startPipeline(ctx context.Context, dir string) (url string, stop func(), err error) {
	log := slog.New(slog.DiscardHandler)
	state := filepath.Join(dir, "jetstream")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return "", nil, err
	}
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: state, Port: -1})
	if err != nil {
		return "", nil, err
	}
	b, err := bus.New(ctx, bus.Options{Connect: ns.Connect, Source: "flatbed/example", Logger: log, RetryBase: 100 * time.Millisecond})
	if err != nil {
		ns.Shutdown()
		return "", nil, err
	}
	closeAll := func() {
		_ = b.Close()
		ns.Shutdown()
	}
	if err := register(ctx, b, filepath.Join(dir, "store"), log); err != nil {
		closeAll()
		return "", nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	<-b.Running()
	return ns.URL(), func() {
		cancel()
		<-done
		closeAll()
	}, nil
}

func register(ctx context.Context, b *bus.Bus, storeRoot string, log *slog.Logger) error {
	descs, err := b.Descriptions(ctx)
	if err != nil {
		return err
	}
	locks, err := b.Locks(ctx)
	if err != nil {
		return err
	}
	for _, s := range []interface {
		Register(context.Context, *bus.Bus) error
	}{
		&resolver.Service{StoreRoot: storeRoot, Bus: b, Log: log, Descriptions: descs},
		&ingester.Service{StoreRoot: storeRoot, Bus: b, Log: log, Locks: locks},
		&flattener.Service{StoreRoot: storeRoot, Bus: b, Log: log, Locks: locks, Descriptions: descs},
		&thinpusher.Service{Bus: b, Log: log, Descriptions: descs},
		&notifier.Service{StoreRoot: storeRoot, Bus: b, Log: log},
	} {
		if err := s.Register(ctx, b); err != nil {
			return err
		}
	}
	return nil
}
