package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/events/porttest"
)

func withInactiveThreshold(t *testing.T, d time.Duration) {
	old := ConsumerInactiveThreshold
	ConsumerInactiveThreshold = d
	t.Cleanup(func() { ConsumerInactiveThreshold = old })
}

// A front door that ran once and never again: its consumers (the images' states and the
// outbound webhook) hold the results they never took, so the janitor sweeps nothing, until
// the server deletes them after ConsumerInactiveThreshold; then the janitor sweeps the
// stream empty.
func TestInactiveFrontDoorConsumersAreDeletedAndSwept(t *testing.T) {
	withInactiveThreshold(t, 2*time.Second)
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	ctx := context.Background()
	b, err := bus.New(ctx, bus.Options{Connect: ns.Connect, Source: "flatbed/test", Registerer: prometheus.NewRegistry(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := &Service{Bus: b, Log: quietLog(), Token: []byte(testToken), Metrics: NewMetrics(prometheus.NewRegistry())}
	if err := s.Register(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := (&Notifier{URL: "http://127.0.0.1:1/hook", Log: quietLog()}).Register(ctx, b); err != nil {
		t.Fatal(err)
	}
	js := b.JetStream()
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{Name, NotifyConsumer} {
		c, err := stream.Consumer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.CachedInfo().Config.InactiveThreshold; got != ConsumerInactiveThreshold {
			t.Errorf("consumer %s: inactive threshold %v, want %v", name, got, ConsumerInactiveThreshold)
		}
	}
	// The bus never runs: nobody pulls, as when the front door has stopped.
	result(t, b, "w1", false)
	result(t, b, "w2", true)
	if below, err := bus.Sweep(ctx, js); err != nil || below != 0 {
		t.Fatalf("sweep while the front door's consumers wait for the results: purged below %d (%v), want nothing", below, err)
	}
	if n := storedMessages(t, stream); n != 2 {
		t.Fatalf("%d messages in the stream, want the 2 results", n)
	}

	for _, name := range []string{Name, NotifyConsumer} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := stream.Consumer(ctx, name)
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer %s still there 20s after it went inactive for %v (%v)", name, ConsumerInactiveThreshold, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if below, err := bus.Sweep(ctx, js); err != nil || below == 0 {
		t.Fatalf("sweep after the front door's consumers were deleted: purged below %d (%v), want the results swept", below, err)
	}
	if n := storedMessages(t, stream); n != 0 {
		t.Errorf("%d messages in the stream after the sweep, want none", n)
	}
}

// A running outbound webhook whose receiver stays down for longer than the threshold keeps
// its consumer (it pulls all the while): the receiver, once up, gets the result.
func TestNotifyConsumerOutlivesTheThresholdWhileRunning(t *testing.T) {
	withInactiveThreshold(t, time.Second)
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	port, err := porttest.Free() // it comes up later: nobody else may take it meanwhile
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{addr: fmt.Sprintf("127.0.0.1:%d", port), got: map[string]int{}} // down: connections are refused
	r := runNotifier(t, ns, "http://"+rc.addr+"/hook", false)
	id := result(t, r.b, "w1", false)
	time.Sleep(4 * time.Second) // four thresholds of a receiver refusing
	if _, err := r.b.JetStream().Consumer(context.Background(), events.Stream, NotifyConsumer); err != nil {
		t.Fatalf("the running webhook's consumer: %v", err)
	}
	rc.up(t, false)
	defer rc.down()
	waitCount(t, rc, 1)
	if _, got, _ := rc.count(); got[id] != 1 {
		t.Errorf("deliveries %v, want %s once", got, id)
	}
}

func storedMessages(t *testing.T, stream jetstream.Stream) uint64 {
	t.Helper()
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
