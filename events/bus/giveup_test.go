package bus_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

var validJob = events.Job{WishID: "w1", CorrelationID: "c1", Image: "http://127.0.0.1:5000/a/b:c", CvmfsRepo: "unpacked.example.org"}

// nextFailure waits for the next image.failed on the stream.
func nextFailure(t *testing.T, ctx context.Context, js jetstream.JetStream) events.ImageFailed {
	t.Helper()
	c, err := js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.Subject(events.ImageFailedType)}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("no image.failed: %v", err)
	}
	ev, err := events.Parse(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := events.Check(events.ImageFailedType, ev.Data())
	if err != nil {
		t.Fatalf("the bus published an invalid image.failed: %v", err)
	}
	return *v.(*events.ImageFailed)
}

// A handler error on the last attempt ends as image.failed with the error, not as silence.
func TestLastAttemptReportsTheWish(t *testing.T) {
	_, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var calls atomic.Int32
	if err := b.Handle(ctx, bus.Consumer{Name: "failing", Types: []string{events.WishSubmittedType}, MaxAttempts: 2},
		func(context.Context, *bus.Delivery) error { calls.Add(1); return context.DeadlineExceeded }); err != nil {
		t.Fatal(err)
	}
	go b.Run(ctx)
	<-b.Running()
	publish(t, ctx, b, validJob)
	f := nextFailure(t, ctx, b.JetStream())
	if f.Job.WishID != "w1" || f.Stage != "failing" || !strings.Contains(f.Error, "deadline exceeded") || !strings.Contains(f.Error, "gave up after 2 attempts") {
		t.Errorf("image.failed = %+v", f)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2", n)
	}
}

// A permanent error fails the wish at once.
func TestPermanentErrorReportsAtOnce(t *testing.T) {
	_, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var calls atomic.Int32
	if err := b.Handle(ctx, bus.Consumer{Name: "failing", Types: []string{events.WishSubmittedType}, MaxAttempts: 5},
		func(context.Context, *bus.Delivery) error {
			calls.Add(1)
			return events.Permanent(context.DeadlineExceeded)
		}); err != nil {
		t.Fatal(err)
	}
	go b.Run(ctx)
	<-b.Running()
	publish(t, ctx, b, validJob)
	if f := nextFailure(t, ctx, b.JetStream()); f.Job.WishID != "w1" {
		t.Errorf("image.failed = %+v", f)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

// An event that fails validation never reaches the handler: it goes to the dead-letter stream
// and its wish is reported failed with the reason.
func TestInvalidEventIsRejectedAndReported(t *testing.T) {
	ns, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var calls atomic.Int32
	if err := b.Handle(ctx, bus.Consumer{Name: "strict", Types: []string{events.WishSubmittedType}},
		func(context.Context, *bus.Delivery) error { calls.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	go b.Run(ctx)
	<-b.Running()
	hostile := validJob
	hostile.CvmfsRepo = "../../../etc"
	publish(t, ctx, b, hostile)
	f := nextFailure(t, ctx, b.JetStream())
	if f.Job.WishID != "w1" || !strings.Contains(f.Error, "cvmfs_repo") || f.Job.CvmfsRepo != "" {
		t.Errorf("image.failed = %+v; want the wish, the reason naming cvmfs_repo and the hostile repo left out", f)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler saw the invalid event %d times", n)
	}
	nc, err := ns.Connect("reader")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	info, err := js.StreamInfo(events.DeadStream)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("dead-letter stream: %+v, %v; want the rejected message", info, err)
	}
	m, err := js.GetMsg(events.DeadStream, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Header.Get("Flatbed-Dead-Reason"), "cvmfs_repo") {
		t.Errorf("dead letter reason %q", m.Header.Get("Flatbed-Dead-Reason"))
	}
}

// A message that is not a CloudEvent at all but names its wish in a ce-wishid header is
// reported too.
func TestUnreadableMessageWithWishIsReported(t *testing.T) {
	_, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Handle(ctx, bus.Consumer{Name: "strict", Types: []string{events.WishSubmittedType}},
		func(context.Context, *bus.Delivery) error { return nil }); err != nil {
		t.Fatal(err)
	}
	go b.Run(ctx)
	<-b.Running()
	m := &nats.Msg{Subject: events.Subject(events.WishSubmittedType), Header: nats.Header{}, Data: []byte("not json")}
	m.Header.Set("ce-wishid", "w-garbage")
	if _, err := b.JetStream().PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	if f := nextFailure(t, ctx, b.JetStream()); f.Job.WishID != "w-garbage" || !strings.Contains(f.Error, "rejected") {
		t.Errorf("image.failed = %+v", f)
	}
}

// A delivery that comes back after its last attempt (the handler crashed the process or hung)
// is reported without running the handler again.
func TestRedeliveryAfterLastAttemptIsReported(t *testing.T) {
	_, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var calls atomic.Int32
	if err := b.Handle(ctx, bus.Consumer{Name: "crashy", Types: []string{events.WishSubmittedType}, MaxAttempts: 1},
		func(context.Context, *bus.Delivery) error { calls.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, b, validJob)
	// Delivery 1 goes to a worker that dies without acknowledging (here: a Nak).
	cons, err := b.JetStream().Consumer(ctx, events.Stream, "crashy")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range msgs.Messages() {
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}
	go b.Run(ctx)
	<-b.Running()
	f := nextFailure(t, ctx, b.JetStream())
	if !strings.Contains(f.Error, "crashed or timed out") || f.Stage != "crashy" {
		t.Errorf("image.failed = %+v", f)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler ran %d times after the last attempt", n)
	}
}

func publish(t *testing.T, ctx context.Context, b *bus.Bus, job events.Job) {
	t.Helper()
	// Raw, so that an invalid job reaches the bus the way a hostile publisher would send it.
	data, _ := json.Marshal(events.WishSubmitted{Job: job})
	env, err := events.New(events.WishSubmittedType, "flatbed/test", events.ID(events.WishSubmittedType, job.WishID, job.CvmfsRepo), job, job.Image, json.RawMessage(data))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
}
