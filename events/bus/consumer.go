package bus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"time"

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
	// InactiveThreshold, when not 0, has the server delete the durable consumer after it
	// has gone this long without anyone pulling from it: for a consumer of a service that
	// may stop running for good (it is not one of events.Consumers, which every process
	// declares), so that the events it never took do not hold the stream (see Sweep).
	InactiveThreshold time.Duration
}

// Delivery is one event handed to a handler.
type Delivery struct {
	Event       *event.Event
	Type        string // short type
	Data        any    // the validated data (a pointer to the type's struct); nil outside the bus
	Attempt     int    // 1 on first delivery
	MaxAttempts int
}

// Decode unmarshals the event data into v and validates it (the bus has validated it before
// the handler runs; Decode checks again for deliveries made without a bus, as in tests).
func (d *Delivery) Decode(v any) error {
	if err := events.Decode(d.Event, v); err != nil {
		return events.Permanent(err)
	}
	if vv, ok := v.(interface{ Validate() error }); ok {
		if err := vv.Validate(); err != nil {
			return events.Permanent(fmt.Errorf("%w: %s: %w", events.ErrInvalid, d.Type, err))
		}
	}
	return nil
}

// LastAttempt says the handler should give up (publish a failure) instead of returning an error.
func (d *Delivery) LastAttempt() bool { return d.Attempt >= d.MaxAttempts }

// Handler handles one delivery. nil acknowledges it; an error redelivers it after a back-off,
// unless it is permanent (events.Permanent) or the last attempt: then the bus reports the
// wish failed with it (events.ImageFailed) and acknowledges. Handlers must be idempotent: a
// delivery may come again after a crash.
type Handler func(ctx context.Context, d *Delivery) error

// Handle creates (or updates) the durable consumer and registers h to run on it once Run
// starts.
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
	cfg := consumerConfig(c.Name, c.Types, c.AckWait, c.MaxAttempts+3) // +3: a safety net for handlers that crash the process
	cfg.InactiveThreshold = c.InactiveThreshold
	stream, err := b.js.Stream(ctx, events.Stream)
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", events.Stream, err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, cfg)
	if errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) {
		// The server applies an update from one filter subject (a consumer an older flatbed
		// made, restored from disk) to several but answers without them; the server
		// version was checked at connect, so read back what it holds.
		cons, err = filtersApplied(ctx, stream, cfg)
	}
	if err != nil {
		return fmt.Errorf("creating consumer %s: %w", c.Name, err)
	}
	b.consumers.add(c.Name)
	b.handlers = append(b.handlers, registered{c: c, h: h, cons: cons})
	return nil
}

// registered is a handler and the durable consumer it reads.
type registered struct {
	c    Consumer
	h    Handler
	cons jetstream.Consumer
}

// start pulls from every registered consumer, Concurrency pulls at a time for each.
func (b *Bus) start(work context.Context) error {
	for _, r := range b.handlers {
		for range r.c.Concurrency {
			b.mu.Lock()
			if b.stopping {
				b.mu.Unlock()
				return nil
			}
			cc, err := r.cons.Consume(func(jm jetstream.Msg) { b.deliver(work, r, jm) },
				// One message at a time per pull: a prefetched message's ack wait would run
				// out while it waits behind a long layer.
				// Short heartbeats: after a server or consumer leader is lost, a pull that
				// will never be answered is noticed within seconds and pulled again elsewhere.
				jetstream.PullMaxMessages(1),
				jetstream.PullExpiry(10*time.Second),
				jetstream.PullHeartbeat(2*time.Second),
				jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
					b.log.Warn("consumer interrupted, resuming", "consumer", r.c.Name, "err", err)
				}),
			)
			if err == nil {
				b.consume = append(b.consume, cc)
			}
			b.mu.Unlock()
			if err != nil {
				return fmt.Errorf("consuming %s: %w", r.c.Name, err)
			}
		}
	}
	return nil
}

func (b *Bus) isStopping() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stopping
}

// errHandBack hands a delivery back at once, for another instance (or this one after a
// restart) to take: this process is shutting down.
var errHandBack = errors.New("shutting down")

// deliver runs on the consumer's subscription, one delivery at a time: it hands the event to
// the handler and settles the delivery (ack, or nak with a back-off) before returning, so a
// drained subscription has nothing left unacknowledged.
func (b *Bus) deliver(ctx context.Context, r registered, jm jetstream.Msg) {
	b.busy.Add(1)
	defer b.busy.Add(-1)
	err := b.handleSafely(ctx, r, jm)
	actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case err == nil:
		// A synchronous ack: once it returns the server has the ack, so a drain that waits
		// for this callback leaves nothing to redeliver.
		if err := jm.DoubleAck(actx); err != nil {
			b.log.Warn("acknowledging failed; the event may be handled again", "consumer", r.c.Name, "subject", jm.Subject(), "err", err)
		}
	case errors.Is(err, errHandBack):
		if err := jm.Nak(); err != nil {
			b.log.Warn("handing a delivery back failed; it comes again after its ack wait", "consumer", r.c.Name, "err", err)
		}
	default:
		delay := backoff{base: b.opts.RetryBase}.WaitTime(1)
		if md, merr := jm.Metadata(); merr == nil {
			delay = backoff{base: b.opts.RetryBase}.WaitTime(md.NumDelivered)
		}
		if err := jm.NakWithDelay(delay); err != nil {
			b.log.Warn("asking for a redelivery failed; it comes again after its ack wait", "consumer", r.c.Name, "err", err)
		}
	}
}

// handleSafely is handle with a panic turned into an error: the delivery is retried.
func (b *Bus) handleSafely(ctx context.Context, r registered, jm jetstream.Msg) (err error) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("handler panicked", "consumer", r.c.Name, "subject", jm.Subject(), "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return b.handle(ctx, r.c, r.h, jm)
}

// handle validates the delivery and runs the handler on it. nil means acknowledge: the
// handler succeeded, or the bus reported the wish failed (image.failed) or moved an
// unreadable message to the dead-letter stream.
func (b *Bus) handle(ctx context.Context, c Consumer, h Handler, jm jetstream.Msg) error {
	if b.isStopping() {
		return errHandBack
	}
	nm := &nats.Msg{Subject: jm.Subject(), Header: jm.Headers(), Data: jm.Data()}
	ev, err := events.Parse(nm)
	if err != nil {
		return b.reject(ctx, c.Name, nm, nil, err)
	}
	typ := events.ShortType(ev)
	data, err := events.Check(typ, ev.Data())
	if err != nil {
		return b.reject(ctx, c.Name, nm, ev, err)
	}
	d := &Delivery{Event: ev, Type: typ, Data: data, Attempt: 1, MaxAttempts: c.MaxAttempts}
	if md, err := jm.Metadata(); err == nil {
		d.Attempt = int(md.NumDelivered)
	}
	if d.Attempt > d.MaxAttempts {
		// Delivered again after the last attempt: the handler crashed the process or
		// hung each time. Report it rather than run it once more.
		return b.giveUp(ctx, c.Name, ev, fmt.Errorf("%s gave up on %s %s after %d deliveries: the handler crashed or timed out each time",
			c.Name, typ, ev.ID(), d.Attempt-1))
	}
	stop := heartbeat(jm, c.AckWait/3)
	start := time.Now()
	err = h(ctx, d)
	stop()
	b.metrics.observe(c.Name, d.Type, time.Since(start), err)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled) && (b.isStopping() || ctx.Err() != nil):
		return fmt.Errorf("%w: %w", errHandBack, err)
	case events.IsPermanent(err) || d.LastAttempt():
		if d.LastAttempt() && !events.IsPermanent(err) {
			err = fmt.Errorf("%w (gave up after %d attempts)", err, d.Attempt)
		}
		return b.giveUp(ctx, c.Name, ev, err)
	}
	b.log.Warn("handler failed, will retry", "consumer", c.Name, "type", d.Type, "id", ev.ID(), "attempt", d.Attempt, "of", d.MaxAttempts, "err", err)
	return err
}

// reject moves a message no handler may see (not a CloudEvent, or data that fails its
// type's validation) to the dead-letter stream and reports its wish failed, when the message
// names one.
func (b *Bus) reject(ctx context.Context, consumer string, m *nats.Msg, ev *event.Event, cause error) error {
	b.deadLetter(ctx, consumer, m, cause)
	return b.giveUp(ctx, consumer, ev, fmt.Errorf("%s rejected a message on %s: %w", consumer, m.Subject, cause), m)
}

// giveUp reports the wish of ev failed (image.failed, which the notifier turns into
// conversion.failed) with cause. When the report cannot be published the delivery is retried.
func (b *Bus) giveUp(ctx context.Context, consumer string, ev *event.Event, cause error, raw ...*nats.Msg) error {
	var data []byte
	var wish, corr, subject string
	if ev != nil {
		data = ev.Data()
		wish, _ = ev.Extensions()[events.ExtWishID].(string)
		corr, _ = ev.Extensions()[events.ExtCorrelationID].(string)
		subject = ev.Subject()
	} else if len(raw) > 0 {
		data = raw[0].Data
		wish = raw[0].Header.Get("ce-" + events.ExtWishID)
		corr = raw[0].Header.Get("ce-" + events.ExtCorrelationID)
		subject = raw[0].Header.Get("ce-subject")
	}
	job, img, ok := events.Salvage(data, wish, corr, subject)
	if !ok {
		b.log.Error("giving up on a message that names no wish; nothing to report", "consumer", consumer, "err", cause)
		return nil
	}
	b.log.Error("giving up", "consumer", consumer, "wish", job.WishID, "image", job.Image, "err", cause)
	env, err := events.Failed(b.opts.Source+"/"+consumer, events.ImageFailed{Job: job, Image: img, Stage: consumer, Error: cause.Error()})
	if err != nil {
		return err
	}
	if err := b.Publish(ctx, env); err != nil {
		return fmt.Errorf("reporting the failure of wish %s: %w", job.WishID, err)
	}
	b.metrics.failed.WithLabelValues(consumer).Inc()
	return nil
}

// consumerConfig is the durable consumer of a stage (also declared, before the stage first
// starts, by EnsureStreams).
func consumerConfig(name string, types []string, ackWait time.Duration, maxDeliver int) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "flatbed " + name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    maxDeliver,
		MaxAckPending: 1024,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	var subjects []string
	for _, t := range types {
		subjects = append(subjects, events.Subject(t))
	}
	if len(subjects) == 1 {
		cfg.FilterSubject = subjects[0]
	} else {
		cfg.FilterSubjects = subjects
	}
	return cfg
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

type backoff struct{ base time.Duration }

// WaitTime doubles the delay with every delivery, up to 30 seconds.
func (b backoff) WaitTime(n uint64) time.Duration {
	d := time.Duration(float64(b.base) * math.Pow(2, float64(n)-1))
	if d > 30*time.Second || d <= 0 {
		return 30 * time.Second
	}
	return d
}

// filtersApplied returns the consumer cfg names if the server holds it with cfg's filter
// subjects.
func filtersApplied(ctx context.Context, stream jetstream.Stream, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cons, err := stream.Consumer(ctx, cfg.Durable)
	if err != nil {
		return nil, fmt.Errorf("reading back its subjects after an update: %w", err)
	}
	got := slices.Sorted(slices.Values(cons.CachedInfo().Config.FilterSubjects))
	if !slices.Equal(got, slices.Sorted(slices.Values(cfg.FilterSubjects))) {
		return nil, fmt.Errorf("the server kept subjects %v after an update to %v: %w", got, cfg.FilterSubjects, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported)
	}
	return cons, nil
}
