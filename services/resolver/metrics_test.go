package resolver

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus/metric"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
)

// What /metrics shows after wishes were resolved, found converted and refused: images by
// result, failures by reason, and the platforms of the indexes tags named.
func TestMetrics(t *testing.T) {
	withHost(t, linuxAMD64)
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	pushIndex(t, host, "multi/arch:1", linuxARM64, linuxAMD64)
	reg := prometheus.NewRegistry()
	s, _ := newService(t)
	s.Metrics = NewMetrics(reg)
	wish := func(image string, multi bool) error {
		job := eventstest.Job(image)
		job.MultiArch = multi
		return s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1))
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(wish("http://"+host+"/demo/hello:2.0", false)) // resolved
	converted := eventstest.Describe(t, demo(t, "demo/hello:1.0").Image, host, "demo/hello", "1.0")
	writeStore(t, store.New(filepath.Join(s.StoreRoot, eventstest.Job("x").CvmfsRepo)), host+"/demo/hello:1.0", converted.Image.ConfigDigest,
		storeState{manifest: converted.Manifest, flat: true, public: true})
	must(wish("http://"+host+"/demo/hello:1.0", false)) // already converted
	must(wish("http://"+host+"/multi/arch:1", false))   // resolved: the host's platform, one skipped
	must(wish("http://"+host+"/multi/arch:1", true))    // resolved: both
	if err := wish("http://"+host+"/demo/none:1", false); !events.IsPermanent(err) {
		t.Fatalf("a tag the registry lacks: %v, want a permanent error", err)
	}
	if err := wish("http://"+host+"/demo/hello:*", false); !events.IsPermanent(err) {
		t.Fatalf("a wildcard: %v, want a permanent error", err)
	}

	got, err := metric.Scrape(reg)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		`flatbed_resolver_images_total{result="resolved"}`:          3,
		`flatbed_resolver_images_total{result="already_converted"}`: 1,
		`flatbed_resolver_images_total{result="failed"}`:            2,
		`flatbed_resolver_failures_total{reason="not_found"}`:       1,
		`flatbed_resolver_failures_total{reason="invalid"}`:         1,
		`flatbed_resolver_platforms_total{result="chosen"}`:         3,
		`flatbed_resolver_platforms_total{result="skipped"}`:        1,
		`flatbed_resolver_index_platforms_count`:                    2,
		`flatbed_resolver_index_platforms_sum`:                      4,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if t.Failed() {
		t.Logf("scraped: %v", got)
	}
}
