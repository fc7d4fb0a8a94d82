package flattener

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus/metric"
)

// Two flatteners in one process ('flatbed serve flattener flattener') register on one
// registry: the second shares the first one's series (it panicked in MustRegister).
func TestMetricsOfTwoFlattenersShareOneRegistry(t *testing.T) {
	r := prometheus.NewRegistry()
	a := NewMetrics(r)
	b := NewMetrics(r)
	a.Images.WithLabelValues("built").Inc()
	b.Images.WithLabelValues("built").Inc()
	a.Bytes.Add(3)
	b.Bytes.Add(4)
	got, err := metric.Scrape(r)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{`flatbed_flattener_images_total{result="built"}`: 2, "flatbed_flattener_bytes_written_total": 7} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v; scraped %v", k, got[k], want, got)
		}
	}
}
