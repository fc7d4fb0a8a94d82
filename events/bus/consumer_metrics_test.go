package bus_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// Two buses in one process registered on one registry both report their consumers' gauges
// (the second is not silently left out), a consumer both run is reported once, and a closed
// bus's consumers go.
func TestTwoBusesReportTheirConsumers(t *testing.T) {
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	reg := prometheus.NewRegistry()
	ctx := context.Background()
	open := func(consumers ...string) *bus.Bus {
		b, err := bus.New(ctx, bus.Options{Connect: ns.Connect, Source: "flatbed/test", Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range consumers {
			if err := b.Handle(ctx, bus.Consumer{Name: c, Types: []string{events.WishSubmittedType}},
				func(context.Context, *bus.Delivery) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	first := open("resolver", "shared")
	defer first.Close()
	second := open("ingester", "shared")

	consumers := func() []string {
		mfs, err := reg.Gather() // fails on a series collected twice
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, mf := range mfs {
			if mf.GetName() != "flatbed_consumer_pending_messages" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "consumer" {
						names = append(names, l.GetValue())
					}
				}
			}
		}
		slices.Sort(names)
		return names
	}
	want := []string{"ingester", "resolver", "shared"}
	waitFor(t, 10*time.Second, "gauges of both buses' consumers", func() bool { return slices.Equal(consumers(), want) })

	second.Close()
	want = []string{"resolver", "shared"}
	waitFor(t, 5*time.Second, "the closed bus's consumers to go", func() bool { return slices.Equal(consumers(), want) })
}
