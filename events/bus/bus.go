package bus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus/metric"
)

// Options configures a Bus.
type Options struct {
	// Connect opens a NATS connection; the bus opens one and watches it (Healthy).
	Connect func(name string) (*nats.Conn, error)
	// Source is the CloudEvents source of what this process publishes, e.g. "flatbed/resolver".
	Source string
	Logger *slog.Logger
	// Registerer receives the bus metrics; nil means prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// RetryBase is the first redelivery delay after a handler error (doubles up to 30s).
	RetryBase time.Duration
	// Replicas of the streams; 0 chooses 3 when the server is part of a cluster, else 1.
	Replicas int
	// StreamMaxBytes bounds the pipeline stream. 0 keeps the limit of an existing stream
	// and creates a new one with DefaultStreamMaxBytes.
	StreamMaxBytes int64
	// ClusterWait is how long New waits for a JetStream cluster still forming (not yet
	// enough peers to place the streams' replicas, no meta leader) before giving up; 0
	// means DefaultClusterWait.
	ClusterWait time.Duration
}

// DefaultClusterWait is how long New waits, by default, for a forming cluster.
const DefaultClusterWait = 30 * time.Second

// Bus publishes events and runs the durable consumers of the services in this process.
type Bus struct {
	opts      Options
	log       *slog.Logger
	nc        *nats.Conn
	js        jetstream.JetStream
	conns     conns
	metrics   *metrics
	consumers *consumerCollector
	gauges    *consumerGauges // shared by the buses registered on one registerer
	replicas  int

	handlers []registered  // added by Handle, started by Run
	running  chan struct{} // closed once Run has started every consumer
	started  sync.Once     // closes running
	ran      atomic.Bool   // Run was called

	mu       sync.Mutex
	stopping bool          // no new work: deliveries are handed back for redelivery
	drained  chan struct{} // closed when the drain has finished
	consume  []jetstream.ConsumeContext
	busy     atomic.Int64 // handlers running now
}

// New connects the bus, checks the server's version and makes sure the streams exist.
func New(ctx context.Context, o Options) (*Bus, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.DefaultRegisterer
	}
	b := &Bus{opts: o, log: o.Logger, running: make(chan struct{}), drained: make(chan struct{})}
	nc, err := b.connect(o.Source)
	if err != nil {
		return nil, err
	}
	b.nc = nc
	if b.js, err = jetstream.New(nc); err != nil {
		b.conns.closeAll()
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	replicas := o.Replicas
	if replicas == 0 {
		replicas = 1
		if nc.ConnectedClusterName() != "" {
			replicas = 3 // survives the loss of one node
		}
	}
	b.replicas = replicas
	if err := b.ensureStreams(ctx, StreamOptions{Replicas: replicas, MaxBytes: o.StreamMaxBytes}); err != nil {
		b.conns.closeAll()
		return nil, err
	}
	b.metrics = newMetrics(o.Registerer)
	b.consumers = newConsumerCollector(b.js, b.log)
	b.gauges = metric.Register(o.Registerer, newConsumerGauges()) // a second bus in one process reports through the first's
	b.gauges.join(b.consumers)
	return b, nil
}

// JetStream exposes the JetStream context (for watchers and tests).
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Publish sends one event and returns once JetStream has stored it (or dropped it as a
// duplicate of an earlier publish with the same id).
func (b *Bus) Publish(ctx context.Context, env *events.Envelope) error {
	m, err := env.Msg(ctx)
	if err != nil {
		return err
	}
	if _, err := b.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("publishing %s %s: %w", env.Type, env.ID, err)
	}
	b.metrics.published.WithLabelValues(env.Type).Inc()
	return nil
}

// Run runs every consumer added with Handle until ctx ends, then stops taking work, lets the
// handlers in flight finish and acknowledge, and returns.
func (b *Bus) Run(ctx context.Context) error {
	b.ran.Store(true)
	// Handlers keep their context while draining; it ends only when the drain times out.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	err := b.start(work)
	b.started.Do(func() { close(b.running) })
	if err != nil {
		b.drain(cancelWork)
		return err
	}
	go b.janitor(ctx)
	<-ctx.Done()
	b.drain(cancelWork)
	return nil
}

// Running is closed once Run has started every consumer.
func (b *Bus) Running() <-chan struct{} { return b.running }

// DrainTimeout bounds how long Close and Run wait for handlers in flight; then their
// context is cancelled.
var DrainTimeout = 60 * time.Second

// drain stops taking new work and waits until every handler in flight has returned and its
// delivery has been acknowledged (or handed back), so nothing is left for AckWait to
// redeliver. A second call (Close after Run) waits for the first.
func (b *Bus) drain(cancelWork context.CancelFunc) {
	b.mu.Lock()
	if b.stopping {
		b.mu.Unlock()
		<-b.drained
		return
	}
	b.stopping = true
	consume := b.consume
	b.mu.Unlock()
	defer close(b.drained)
	for _, cc := range consume {
		cc.Drain() // no more pulls; a message already buffered is handed back at once
	}
	done := make(chan struct{})
	go func() {
		for _, cc := range consume {
			// Closed once the subscription is gone and its callback has returned: the
			// callback acknowledges (or hands back) before it returns.
			<-cc.Closed()
		}
		close(done)
	}()
	timeout := time.After(DrainTimeout)
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for waiting := true; waiting; {
		select {
		case <-done:
			return
		case <-poll.C:
			// With the server away no ack can be sent and the subscriptions cannot finish
			// draining: once no handler runs there is nothing left to wait for.
			if b.busy.Load() == 0 && b.nc.Status() != nats.CONNECTED {
				return
			}
		case <-timeout:
			waiting = false
		}
	}
	b.log.Warn("handlers still running after the drain timeout; cancelling them", "timeout", DrainTimeout)
	cancelWork()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.log.Error("handlers ignored cancellation; their deliveries come again after their ack wait")
	}
}

// Close stops taking work, waits for the handlers in flight, then closes the connection.
func (b *Bus) Close() error {
	if b.ran.Load() {
		b.drain(func() {})
	}
	b.gauges.leave(b.consumers)
	b.consumers.stop()
	b.conns.closeAll()
	return nil
}
