package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// Sweep removes what every consumer has acknowledged and keeps what one still needs.
func TestSweepKeepsUnprocessedWork(t *testing.T) {
	_, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := b.JetStream()
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	// "fast" reads wishes, "slow" reads layer requests; neither has read anything yet.
	for name, typ := range map[string]string{"fast": events.WishSubmittedType, "slow": events.LayerRequestedType} {
		if _, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: name, FilterSubject: events.Subject(typ), AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(typ string, i int) {
		job := events.Job{WishID: fmt.Sprint(i)}
		env, err := events.New(typ, "flatbed/test", fmt.Sprint(typ, i), job, "", events.WishSubmitted{Job: job})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		publish(events.WishSubmittedType, i) // seq 1..3
	}
	publish(events.LayerRequestedType, 9) // seq 4, for "slow"
	for i := 3; i < 5; i++ {
		publish(events.WishSubmittedType, i) // seq 5..6
	}
	if below, err := bus.Sweep(ctx, js); err != nil || below != 0 {
		t.Fatalf("sweep before any ack purged below %d (%v); want nothing", below, err)
	}
	// "fast" processes all five wishes.
	fast, _ := stream.Consumer(ctx, "fast")
	batch, err := fast.Fetch(5)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	below, err := bus.Sweep(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if below != 4 {
		t.Errorf("purged below %d, want 4: seq 4 waits for the slow consumer", below)
	}
	info, _ := stream.Info(ctx)
	if info.State.FirstSeq != 4 || info.State.Msgs != 3 {
		t.Errorf("stream holds seq %d.. (%d msgs), want 4.. (3 msgs)", info.State.FirstSeq, info.State.Msgs)
	}
	// Once "slow" has it too, everything goes.
	slow, _ := stream.Consumer(ctx, "slow")
	m, err := slow.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	if below, err := bus.Sweep(ctx, js); err != nil || below != 7 {
		t.Errorf("purged below %d (%v), want 7", below, err)
	}
}
