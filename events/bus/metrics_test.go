package bus

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A second bus in one process registers its metrics on the same registry: it shares the
// first one's series.
func TestMetricsOfTwoBusesShareOneRegistry(t *testing.T) {
	r := prometheus.NewRegistry()
	a, b := newMetrics(r), newMetrics(r)
	a.published.WithLabelValues("image.resolved").Inc()
	b.published.WithLabelValues("image.resolved").Inc()
	b.failed.WithLabelValues("resolver").Inc()
	a.observe("resolver", "wish.submitted", 0, nil)
	b.observe("resolver", "wish.submitted", 0, nil)
	if got := testutil.ToFloat64(a.published.WithLabelValues("image.resolved")); got != 2 {
		t.Errorf("flatbed_events_published_total = %v, want 2", got)
	}
	if got := testutil.ToFloat64(a.failed.WithLabelValues("resolver")); got != 1 {
		t.Errorf("flatbed_wishes_given_up_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(b.handled.WithLabelValues("resolver", "wish.submitted", "ok")); got != 2 {
		t.Errorf("flatbed_events_handled_total = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(r, "flatbed_handler_duration_seconds"); err != nil || n != 1 {
		t.Errorf("gathered %d series of flatbed_handler_duration_seconds (%v), want 1", n, err)
	}
}
