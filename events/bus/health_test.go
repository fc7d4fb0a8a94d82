package bus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// startListening starts an embedded server on a loopback port, with its store in dir.
func startListening(t *testing.T, dir string, port int) *bus.Embedded {
	t.Helper()
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// While the server is away the bus says it is not healthy, /metrics gathers at once with the
// last consumer values (and their age), and both recover when the server is back.
func TestHealthAndMetricsFollowTheServer(t *testing.T) {
	dir := t.TempDir()
	ns := startListening(t, dir, -1)
	url := ns.URL()
	var port int
	fmt.Sscanf(url[len("nats://127.0.0.1:"):], "%d", &port)
	defer func() { ns.Shutdown() }()

	reg := prometheus.NewRegistry()
	connect := func(name string) (*nats.Conn, error) {
		return nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	}
	b, err := bus.New(context.Background(), bus.Options{Connect: connect, Source: "flatbed/test", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Handle(context.Background(), bus.Consumer{Name: "resolver", Types: []string{events.WishSubmittedType}},
		func(context.Context, *bus.Delivery) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := b.Healthy(); err != nil {
		t.Fatalf("healthy before the server went away: %v", err)
	}
	waitFor(t, 5*time.Second, "consumer gauges", func() bool { return gauges(t, reg)["flatbed_consumer_pending_messages"] })

	ns.Shutdown()
	waitFor(t, 5*time.Second, "the bus to see the server gone", func() bool { return b.Healthy() != nil })
	t.Logf("server gone: %v", b.Healthy())
	for range 3 {
		start := time.Now()
		got := gauges(t, reg)
		if took := time.Since(start); took > 200*time.Millisecond {
			t.Errorf("gathering metrics with the server gone took %s", took)
		}
		for _, name := range []string{"flatbed_consumer_pending_messages", "flatbed_consumer_ack_pending_messages", "flatbed_consumer_info_age_seconds"} {
			if !got[name] {
				t.Errorf("%s missing while the server is away: %v", name, got)
			}
		}
		time.Sleep(time.Second)
	}

	ns = startListening(t, dir, port)
	waitFor(t, 10*time.Second, "the bus to reconnect", func() bool { return b.Healthy() == nil })
}

func gauges(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	return got
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, d)
		}
	}
}

// A process asked to stop while NATS is away stops at once when no handler runs: there is no
// ack to wait for, and the subscriptions cannot drain without a server.
func TestRunStopsAtOnceWithTheServerAway(t *testing.T) {
	ns := startListening(t, t.TempDir(), -1)
	defer ns.Shutdown()
	url := ns.URL()
	connect := func(name string) (*nats.Conn, error) {
		return nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	}
	b, err := bus.New(context.Background(), bus.Options{Connect: connect, Source: "flatbed/test", Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Handle(context.Background(), bus.Consumer{Name: "resolver", Types: []string{events.WishSubmittedType}, Concurrency: 2},
		func(context.Context, *bus.Delivery) error { return nil }); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- b.Run(ctx) }()
	<-b.Running()
	ns.Shutdown()
	waitFor(t, 5*time.Second, "the bus to see the server gone", func() bool { return b.Healthy() != nil })
	stop()
	start := time.Now()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("Run returned %s after its context ended", time.Since(start).Round(time.Millisecond))
	case <-time.After(3 * time.Second):
		t.Fatal("Run still drains 3s after its context ended, with the server away and no handler running")
	}
}
