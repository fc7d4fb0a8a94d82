package bus_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// A state directory written by an older flatbed holds a stage's consumer with one filter
// subject; when the stage now reads two event types, starting it updates the consumer in
// place (its position kept) instead of failing: the server applies such an update but answers
// without the new subjects, which nats.go takes for a server that cannot filter on several.
func TestConsumerOfAnOlderVersionGainsASubject(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func() (*bus.Embedded, *bus.Bus) {
		ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		b, err := bus.New(ctx, bus.Options{Connect: ns.Connect, Source: "flatbed/test", Registerer: prometheus.NewRegistry()})
		if err != nil {
			ns.Shutdown()
			t.Fatal(err)
		}
		return ns, b
	}

	// The older version: the thin pusher read image.flattened alone.
	ns, b := open()
	stream, err := b.JetStream().Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteConsumer(ctx, "thinpusher"); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "thinpusher", Description: "flatbed thinpusher",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: 8, MaxAckPending: 1024,
		FilterSubject: events.Subject(events.ImageFlattenedType), DeliverPolicy: jetstream.DeliverAllPolicy}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	ns.Shutdown()

	// This version, on the same state directory.
	ns, b = open()
	defer ns.Shutdown()
	defer b.Close()
	types := []string{events.ImageFlattenedType, events.ImageResolvedType}
	if err := b.Handle(ctx, bus.Consumer{Name: "thinpusher", Types: types}, func(context.Context, *bus.Delivery) error { return nil }); err != nil {
		t.Fatalf("starting a stage whose consumer an older version made: %v", err)
	}
	stream, err = b.JetStream().Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.Consumer(ctx, "thinpusher")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	got := slices.Clone(cfg.FilterSubjects)
	if cfg.FilterSubject != "" {
		got = append(got, cfg.FilterSubject)
	}
	want := []string{events.Subject(events.ImageFlattenedType), events.Subject(events.ImageResolvedType)}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the consumer filters %v, want %v", got, want)
	}
}
