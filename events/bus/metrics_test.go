package bus

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus/metric"
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
	got, err := metric.Scrape(r)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		`flatbed_events_published_total{type="image.resolved"}`:                                2,
		`flatbed_wishes_given_up_total{consumer="resolver"}`:                                   1,
		`flatbed_events_handled_total{consumer="resolver",outcome="ok",type="wish.submitted"}`: 2,
		`flatbed_handler_duration_seconds_count{consumer="resolver",type="wish.submitted"}`:    2,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v; scraped %v", k, got[k], want, got)
		}
	}
}
