package bus_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// BenchmarkEventHop measures one hop through the bus, one event at a time, as a stage sees
// it: a wish.submitted CloudEvent is published and stored, a durable consumer delivers it to
// a handler, the handler decodes it and publishes an image.resolved CloudEvent, and a reader
// on that subject receives it. The embedded server listens on loopback and every connection
// goes through TCP. It reports the median and the 99th percentile of the hops (ms).
//
//	go test -run '^$' -bench EventHop -benchtime 2000x ./bus
func BenchmarkEventHop(b *testing.B) {
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: b.TempDir(), Port: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Shutdown()
	connect := func(name string) (*nats.Conn, error) { return nats.Connect(ns.URL(), nats.Name(name)) }
	bb, err := bus.New(context.Background(), bus.Options{Connect: connect, Source: "flatbed/bench", Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	defer bb.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	err = bb.Handle(ctx, bus.Consumer{Name: "hop", Types: []string{events.WishSubmittedType}}, func(ctx context.Context, d *bus.Delivery) error {
		var w events.WishSubmitted
		if err := d.Decode(&w); err != nil {
			return err
		}
		out, err := events.New(events.ImageResolvedType, "flatbed/bench", "resolved-"+d.Event.ID(), w.Job, w.Job.Image,
			events.ImageResolved{Job: w.Job, Image: hopImage})
		if err != nil {
			return err
		}
		return bb.Publish(ctx, out)
	})
	if err != nil {
		b.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- bb.Run(ctx) }()
	<-bb.Running()

	reader, err := connect("hop-reader")
	if err != nil {
		b.Fatal(err)
	}
	defer reader.Close()
	arrived := make(chan string, 1)
	sub, err := reader.Subscribe(events.Subject(events.ImageResolvedType), func(m *nats.Msg) { arrived <- m.Header.Get("ce-id") })
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := reader.Flush(); err != nil {
		b.Fatal(err)
	}

	run := time.Now().UnixNano() // ids unique across -count runs: JetStream drops repeated ones
	hop := func(i int) time.Duration {
		job := events.Job{WishID: fmt.Sprintf("w%d-%d", run, i), CorrelationID: "bench", Image: "http://127.0.0.1:5000/bench/hop:v1", CvmfsRepo: "bench.example.org"}
		in, err := events.New(events.WishSubmittedType, "flatbed/bench", job.WishID, job, job.Image, events.WishSubmitted{Job: job})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := bb.Publish(ctx, in); err != nil {
			b.Fatal(err)
		}
		select {
		case id := <-arrived:
			if id != "resolved-"+job.WishID {
				b.Fatalf("received %s, want resolved-%s", id, job.WishID)
			}
		case <-time.After(10 * time.Second):
			b.Fatalf("hop %d: no image.resolved within 10s", i)
		}
		return time.Since(start)
	}
	for i := range 20 { // warm up: the consumer's pulls and the connections
		hop(-1 - i)
	}

	var hops []time.Duration
	for i := 0; b.Loop(); i++ {
		hops = append(hops, hop(i))
	}
	b.StopTimer()
	slices.Sort(hops)
	b.ReportMetric(ms(percentile(hops, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(hops, 99)), "p99-ms")
	b.ReportMetric(ms(hops[len(hops)-1]), "max-ms")
	cancel()
	if err := <-ran; err != nil {
		b.Error(err)
	}
}

// hopImage is a well-formed resolved image for the handler's output event.
var hopImage = events.Image{
	Registry: "127.0.0.1:5000", Repository: "bench/hop", Tag: "v1", Name: "127.0.0.1:5000/bench/hop:v1",
	Digest:       "sha256:" + fmt.Sprintf("%064x", 1),
	MediaType:    "application/vnd.oci.image.manifest.v1+json",
	ConfigDigest: "sha256:" + fmt.Sprintf("%064x", 2),
	LayerCount:   1,
}

// percentile returns the p-th percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
