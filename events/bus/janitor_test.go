package bus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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
	// The pipeline's consumers are declared when the bus opens: the resolver ("fast") reads
	// wishes, the ingester ("slow") layer requests; neither has read anything yet, and no
	// stage reads anything else published here.
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
	fast, _ := stream.Consumer(ctx, "resolver")
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
	slow, _ := stream.Consumer(ctx, "ingester")
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

// A stage that has never run yet still gets every event published for it, however often the
// janitor sweeps: the bus declares every stage's consumer when it opens.
func TestSweepKeepsEventsForAStageNotStartedYet(t *testing.T) {
	_, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 3 {
		job := validJob
		job.WishID = fmt.Sprint("w", i)
		img := events.Image{Registry: "r.example", Repository: "x", Tag: "1", Name: "r.example/x:1", Digest: "sha256:" + strings.Repeat("a", 64),
			MediaType: "application/vnd.oci.image.manifest.v1+json", ConfigDigest: "sha256:" + strings.Repeat("b", 64), LayerCount: 1}
		env, err := events.New(events.ImageFlattenedType, "flatbed/test", fmt.Sprint("f", i), job, "", events.ImageFlattened{Job: job, Image: img})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := bus.Sweep(ctx, b.JetStream()); err != nil {
			t.Fatal(err)
		}
	}
	// The thin pusher starts only now.
	got := make(chan string, 3)
	if err := b.Handle(ctx, bus.Consumer{Name: "thinpusher", Types: []string{events.ImageFlattenedType}},
		func(_ context.Context, d *bus.Delivery) error { got <- d.Event.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	go b.Run(ctx)
	<-b.Running()
	seen := map[string]bool{}
	for len(seen) < 3 {
		select {
		case id := <-got:
			seen[id] = true
		case <-ctx.Done():
			t.Fatalf("the late stage got %v, want all 3 events", seen)
		}
	}
}
