package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
)

// Options configures a Bus.
type Options struct {
	// Connect opens a new NATS connection. The bus opens one for publishing and one per
	// consumer worker, because a watermill subscriber drains its connection when it closes.
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
}

// Bus publishes events and runs the durable consumers of the services in this process.
type Bus struct {
	opts      Options
	log       *slog.Logger
	nc        *nats.Conn
	js        jetstream.JetStream
	pub       message.Publisher
	router    *message.Router
	inflight  sync.Map // watermill message UUID -> jetstream.Msg, for heartbeats and attempts
	metrics   *metrics
	consumers *consumerCollector
	replicas  int
	closers   []func()

	busy     atomic.Int64 // handlers running now
	stopping atomic.Bool  // no new work: deliveries are handed back for redelivery
}

// New connects the bus and makes sure the streams exist.
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
	b := &Bus{opts: o, log: o.Logger}
	nc, err := o.Connect(o.Source + "/publisher")
	if err != nil {
		return nil, err
	}
	b.nc = nc
	b.closers = append(b.closers, nc.Close)
	if b.js, err = jetstream.New(nc); err != nil {
		nc.Close()
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
	if err := EnsureStreams(ctx, b.js, replicas); err != nil {
		nc.Close()
		return nil, err
	}
	wlog := watermillLogger(o.Logger)
	pub, err := wmjs.NewPublisher(wmjs.PublisherConfig{
		Conn:   nc,
		Logger: wlog,
		// The publisher sends to the "stream name" of a topic: make it the subject itself.
		ConfigureStream: func(topic string) jetstream.StreamConfig { return jetstream.StreamConfig{Name: topic} },
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("creating publisher: %w", err)
	}
	b.pub = pub
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, wlog)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("creating router: %w", err)
	}
	router.AddMiddleware(middleware.Recoverer)
	b.router = router
	b.metrics = newMetrics(o.Registerer)
	b.consumers = newConsumerCollector(b.js)
	_ = o.Registerer.Register(b.consumers) // a second bus in one process reports through the first
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
	wm := message.NewMessage(watermill.NewUUID(), m.Data)
	for k, v := range m.Header {
		wm.Metadata.Set(k, v[0])
	}
	wm.SetContext(ctx)
	if err := b.pub.Publish(m.Subject, wm); err != nil {
		return fmt.Errorf("publishing %s %s: %w", env.Type, env.ID, err)
	}
	b.metrics.published.WithLabelValues(env.Type).Inc()
	return nil
}

// Run runs every consumer added with Handle until ctx ends, then stops taking work, lets the
// handlers in flight finish and acknowledge, and returns.
func (b *Bus) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	// The router's own context stays alive while draining: watermill acknowledges with it.
	go func() { errc <- b.router.Run(context.WithoutCancel(ctx)) }()
	go b.janitor(ctx)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	b.drain()
	if err := b.router.Close(); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// DrainTimeout bounds how long Close and Run wait for handlers in flight.
var DrainTimeout = 60 * time.Second

// drain stops taking new work and waits for the handlers in flight, so their
// acknowledgements are sent before the subscriptions close (watermill drops them otherwise).
func (b *Bus) drain() {
	b.stopping.Store(true)
	deadline := time.Now().Add(DrainTimeout)
	for b.busy.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// The acknowledgement follows the handler's return by one round trip.
	time.Sleep(200 * time.Millisecond)
}

// Running is closed once the router has started its consumers.
func (b *Bus) Running() chan struct{} { return b.router.Running() }

// Close stops taking work, waits for the handlers in flight, then closes the router and every
// connection the bus opened.
func (b *Bus) Close() error {
	if !b.stopping.Load() {
		b.drain()
	}
	var err error
	if b.router.IsRunning() { // closing a router that never ran waits for its CloseTimeout
		err = b.router.Close()
	}
	for _, c := range b.closers {
		c()
	}
	return err
}
