package bus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

func startBus(t *testing.T) (*bus.Embedded, *bus.Bus) {
	t.Helper()
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	b, err := bus.New(context.Background(), bus.Options{
		Connect: ns.Connect, Source: "flatbed/test", Registerer: prometheus.NewRegistry(), RetryBase: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return ns, b
}

func TestPublishHandleRetryAndDedup(t *testing.T) {
	ns, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var calls, okCalls atomic.Int32
	got := make(chan *bus.Delivery, 10)
	err := b.Handle(ctx, bus.Consumer{Name: "test", Types: []string{events.WishSubmittedType}, MaxAttempts: 3},
		func(ctx context.Context, d *bus.Delivery) error {
			if calls.Add(1) == 1 {
				return context.DeadlineExceeded // first delivery fails: must come again
			}
			okCalls.Add(1)
			got <- d
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	go b.Run(ctx)
	<-b.Running()

	job := events.Job{WishID: "w1", CorrelationID: "c1", Image: "http://127.0.0.1:5000/a/b:c", CvmfsRepo: "r"}
	env, err := events.New(events.WishSubmittedType, "flatbed/test", "id-1", job, job.Image, events.WishSubmitted{Job: job})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // the same id three times: JetStream keeps one
		if err := b.Publish(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case d := <-got:
		if d.Attempt != 2 {
			t.Errorf("attempt = %d, want 2", d.Attempt)
		}
		var w events.WishSubmitted
		if err := d.Decode(&w); err != nil || w.Job.WishID != "w1" {
			t.Errorf("decoded %+v, %v", w, err)
		}
		if ext := d.Event.Extensions()[events.ExtCorrelationID]; ext != "c1" {
			t.Errorf("correlationid = %v", ext)
		}
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	time.Sleep(300 * time.Millisecond)
	if n := okCalls.Load(); n != 1 {
		t.Errorf("handled %d times, want 1 (duplicates must be dropped)", n)
	}

	// What a `nats sub` reader sees: binary mode with ce- headers.
	nc, err := ns.Connect("reader")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := nc.JetStream()
	sm, err := js.GetMsg(events.Stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"ce-specversion", "ce-id", "ce-type", "ce-source", "ce-dataschema", "ce-wishid", nats.MsgIdHdr} {
		if sm.Header.Get(h) == "" {
			t.Errorf("header %s missing: %v", h, sm.Header)
		}
	}
	if sm.Header.Get("ce-type") != "dev.flatbed.wish.submitted" {
		t.Errorf("ce-type = %q", sm.Header.Get("ce-type"))
	}
}

func TestConsumerMetrics(t *testing.T) {
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	reg := prometheus.NewRegistry()
	b, err := bus.New(context.Background(), bus.Options{Connect: ns.Connect, Source: "flatbed/test", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	if err := b.Handle(ctx, bus.Consumer{Name: "waiting", Types: []string{events.LayerIngestedType}}, func(context.Context, *bus.Delivery) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// Two events nobody consumes yet (the router is not running): pending must say 2.
	for i := range 2 {
		job := events.Job{WishID: fmt.Sprint(i)}
		env, err := events.New(events.LayerIngestedType, "flatbed/test", fmt.Sprint("id-", i), job, "", events.LayerIngested{Job: job})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	// The server updates a consumer's counts asynchronously: poll briefly.
	got := map[string]float64{}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if m.GetGauge() != nil {
					got[mf.GetName()] = m.GetGauge().GetValue()
				}
			}
		}
		if got["flatbed_consumer_pending_messages"] == 2 {
			break
		}
	}
	if got["flatbed_consumer_pending_messages"] != 2 {
		t.Errorf("pending = %v, want 2 (all gauges: %v)", got["flatbed_consumer_pending_messages"], got)
	}
	if _, ok := got["flatbed_consumer_redelivered_messages"]; !ok {
		t.Errorf("no redelivered gauge: %v", got)
	}
}
