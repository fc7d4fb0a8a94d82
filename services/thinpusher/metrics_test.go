package thinpusher

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus/metric"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/registry/registrytest"
)

// What /metrics shows after thin images were pushed, found in place, skipped and refused: one
// series per result, the failures by reason, and the push time of those pushed or present.
func TestMetrics(t *testing.T) {
	host := registrytest.Serve(t, nil)
	denying := registrytest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Error(w, `{"errors":[{"code":"DENIED","message":"no"}]}`, http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	reg := prometheus.NewRegistry()
	s, _ := newService(t)
	s.Metrics = NewMetrics(reg)
	s.Registry = append(s.Registry, registry.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Cap: 50 * time.Millisecond}),
		registry.WithTimeout(300*time.Millisecond))

	job := eventstest.Job("https://registry.example/demo/hello:2.0")
	job.ThinImage = "http://" + host + "/unpacked/hello_thin:2.0"
	if err := handle(t, s, flattened(t, job), 1); err != nil { // pushed
		t.Fatal(err)
	}
	if err := handleResolved(t, s, resolvedAlready(t, job)); err != nil { // present: the same thin image
		t.Fatal(err)
	}
	skip := job
	skip.SkipThin = true
	if err := handle(t, s, flattened(t, skip), 1); err != nil { // skipped
		t.Fatal(err)
	}
	denied := job
	denied.ThinImage = "http://" + denying + "/unpacked/hello_thin:2.0"
	if err := handle(t, s, flattened(t, denied), 1); !events.IsPermanent(err) { // failed: denied
		t.Fatalf("a refused push: %v, want a permanent error", err)
	}
	bad := job
	bad.ThinImage = "http://registry.example/UPPER/x:1"
	if err := handle(t, s, flattened(t, bad), 1); !events.IsPermanent(err) { // failed: invalid
		t.Fatalf("a bad name: %v, want a permanent error", err)
	}
	s.Descriptions = &eventstest.Descriptions{}
	if err := handle(t, s, flattened(t, job), 1); !events.IsPermanent(err) { // failed: no description
		t.Fatalf("no description: %v, want a permanent error", err)
	}

	got, err := metric.Scrape(reg)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		`flatbed_thinpusher_images_total{result="pushed"}`:           1,
		`flatbed_thinpusher_images_total{result="present"}`:          1,
		`flatbed_thinpusher_images_total{result="skipped"}`:          1,
		`flatbed_thinpusher_images_total{result="failed"}`:           3,
		`flatbed_thinpusher_failures_total{reason="denied"}`:         1,
		`flatbed_thinpusher_failures_total{reason="invalid"}`:        1,
		`flatbed_thinpusher_failures_total{reason="no_description"}`: 1,
		`flatbed_thinpusher_push_seconds_count`:                      2,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if t.Failed() {
		t.Logf("scraped: %v", got)
	}
}

// A failure another attempt may mend counts as a failed attempt, and the image as failed only
// on the last attempt.
func TestMetricsRetried(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	down := fmt.Errorf("pushing the thin image: %w", syscall.ECONNREFUSED)
	m.failed(down, false)
	m.failed(down, true)
	m.failed(context.Canceled, true) // shutting down: not a failure
	got, err := metric.Scrape(reg)
	if err != nil {
		t.Fatal(err)
	}
	if got[`flatbed_thinpusher_failures_total{reason="unavailable"}`] != 2 || got[`flatbed_thinpusher_images_total{result="failed"}`] != 1 {
		t.Errorf("two failed attempts, the second the last: scraped %v", got)
	}
}
