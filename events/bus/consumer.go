package bus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

// Consumer describes one durable consumer of a service.
type Consumer struct {
	Name        string   // durable name, shared by every instance of the service
	Types       []string // event types it reads (events.*Type)
	Concurrency int      // messages handled at once by this process (default 1)
	AckWait     time.Duration
	MaxAttempts int // deliveries before Delivery.LastAttempt is true (default 5)
}

// Delivery is one event handed to a handler.
type Delivery struct {
	Event       *event.Event
	Type        string // short type
	Attempt     int    // 1 on first delivery
	MaxAttempts int
}

// Decode unmarshals the event data into v.
func (d *Delivery) Decode(v any) error { return events.Decode(d.Event, v) }

// LastAttempt says the handler should give up (publish a failure) instead of returning an error.
func (d *Delivery) LastAttempt() bool { return d.Attempt >= d.MaxAttempts }

// Handler handles one delivery. nil acknowledges it; an error redelivers it after a back-off.
// Handlers must be idempotent: a delivery may come again after a crash.
type Handler func(ctx context.Context, d *Delivery) error

// Handle creates (or updates) the durable consumer and registers h to run on it.
func (b *Bus) Handle(ctx context.Context, c Consumer, h Handler) error {
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       c.Name,
		Description:   "flatbed " + c.Name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    c.MaxAttempts + 3, // a safety net for handlers that crash the process
		MaxAckPending: 1024,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	var subjects []string
	for _, t := range c.Types {
		subjects = append(subjects, events.Subject(t))
	}
	if len(subjects) == 1 {
		cfg.FilterSubject = subjects[0]
	} else {
		cfg.FilterSubjects = subjects
	}
	stream, err := b.js.Stream(ctx, events.Stream)
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", events.Stream, err)
	}
	if _, err := stream.CreateOrUpdateConsumer(ctx, cfg); err != nil {
		return fmt.Errorf("creating consumer %s: %w", c.Name, err)
	}
	b.consumers.add(c.Name)
	for i := 0; i < c.Concurrency; i++ {
		nc, err := b.opts.Connect(fmt.Sprintf("%s/%s-%d", b.opts.Source, c.Name, i))
		if err != nil {
			return err
		}
		b.closers = append(b.closers, nc.Close)
		sub, err := wmjs.NewSubscriber(wmjs.SubscriberConfig{
			Conn:   nc,
			Logger: watermillLogger(b.log),
			// The server's AckWait (kept alive by heartbeats) decides redelivery, not watermill.
			AckWaitTimeout: 7 * 24 * time.Hour,
			ResourceInitializer: func(ctx context.Context, js jetstream.JetStream, _ string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
				cons, err := js.Consumer(ctx, events.Stream, c.Name)
				return cons, nil, err
			},
			NakDelay:    backoff{base: b.opts.RetryBase},
			Unmarshaler: unmarshaler{b},
			// One message at a time per worker: a prefetched message's ack wait would run out
			// while it waits behind a long layer.
			// Short heartbeats: after a server or consumer leader is lost, a pull that will never
			// be answered is noticed within seconds and pulled again elsewhere.
			ConsumeOptions: []jetstream.PullConsumeOpt{
				jetstream.PullMaxMessages(1),
				jetstream.PullExpiry(10 * time.Second),
				jetstream.PullHeartbeat(2 * time.Second),
				jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
					b.log.Warn("consumer interrupted, resuming", "consumer", c.Name, "err", err)
				}),
			},
		})
		if err != nil {
			return fmt.Errorf("creating subscriber %s: %w", c.Name, err)
		}
		b.router.AddConsumerHandler(fmt.Sprintf("%s-%d", c.Name, i), c.Name, sub, b.wrap(c, h))
	}
	return nil
}

func (b *Bus) wrap(c Consumer, h Handler) message.NoPublishHandlerFunc {
	return func(m *message.Message) error {
		v, ok := b.inflight.LoadAndDelete(m.UUID)
		if !ok {
			return fmt.Errorf("message %s: no JetStream delivery recorded", m.UUID)
		}
		jm := v.(jetstream.Msg)
		b.busy.Add(1)
		defer b.busy.Add(-1)
		if b.stopping.Load() {
			return errStopping // handed back: another instance, or this one after a restart, takes it
		}
		nm := &nats.Msg{Subject: jm.Subject(), Header: jm.Headers(), Data: jm.Data()}
		ev, err := events.Parse(nm)
		if err != nil {
			b.deadLetter(m.Context(), c.Name, nm, err)
			return nil
		}
		d := &Delivery{Event: ev, Type: events.ShortType(ev), Attempt: 1, MaxAttempts: c.MaxAttempts}
		if md, err := jm.Metadata(); err == nil {
			d.Attempt = int(md.NumDelivered)
		}
		stop := heartbeat(jm, c.AckWait/3)
		start := time.Now()
		err = h(m.Context(), d)
		stop()
		b.metrics.observe(c.Name, d.Type, time.Since(start), err)
		if err != nil {
			b.log.Warn("handler failed, will retry", "consumer", c.Name, "type", d.Type, "id", ev.ID(), "attempt", d.Attempt, "err", err)
		}
		return err
	}
}

// heartbeat tells the server the message is still being worked on, so long layers are not
// redelivered to another worker while this one is busy.
func heartbeat(jm jetstream.Msg, every time.Duration) func() {
	if every <= 0 {
		every = 10 * time.Second
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = jm.InProgress()
			}
		}
	}()
	return func() { close(done) }
}

func (b *Bus) deadLetter(ctx context.Context, consumer string, m *nats.Msg, cause error) {
	b.log.Error("unreadable message moved to the dead-letter stream", "consumer", consumer, "subject", m.Subject, "err", cause)
	dm := &nats.Msg{Subject: events.DeadPrefix + consumer, Header: nats.Header{}, Data: m.Data}
	for k, v := range m.Header {
		if k != nats.MsgIdHdr {
			dm.Header[k] = v
		}
	}
	dm.Header.Set("Flatbed-Dead-Reason", cause.Error())
	dm.Header.Set("Flatbed-Dead-Subject", m.Subject)
	if _, err := b.js.PublishMsg(ctx, dm); err != nil {
		b.log.Error("dead-letter publish failed", "err", err)
	}
	b.metrics.dead.WithLabelValues(consumer).Inc()
}

// unmarshaler hands watermill an opaque message and remembers the JetStream delivery, which
// the handler needs for heartbeats and the attempt count. It never fails: a watermill-nats
// subscriber dereferences the message even when Unmarshal returns an error.
type unmarshaler struct{ b *Bus }

func (u unmarshaler) Unmarshal(jm jetstream.Msg) (*message.Message, error) {
	m := message.NewMessage(watermill.NewUUID(), jm.Data())
	u.b.inflight.Store(m.UUID, jm)
	return m, nil
}

var errStopping = errors.New("shutting down")

type backoff struct{ base time.Duration }

// WaitTime doubles the delay with every delivery, up to 30 seconds.
func (b backoff) WaitTime(n uint64) time.Duration {
	d := time.Duration(float64(b.base) * math.Pow(2, float64(n)-1))
	if d > 30*time.Second || d <= 0 {
		return 30 * time.Second
	}
	return d
}
