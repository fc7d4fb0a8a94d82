package ingester

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus/metric"
)

// Two ingesters in one process ('flatbed serve ingester ingester') register on one registry:
// the second shares the first one's series (it panicked in MustRegister), and the bytes both
// fetch add up.
func TestMetricsOfTwoIngestersShareOneRegistry(t *testing.T) {
	r := prometheus.NewRegistry()
	a := NewMetrics(r)
	b := NewMetrics(r)
	a.Layers.WithLabelValues("unpacked").Inc()
	b.Layers.WithLabelValues("unpacked").Inc()
	a.Written.Add(10)
	b.Written.Add(5)
	a.fetched.Add(100)
	b.fetched.Add(20)
	got, err := metric.Scrape(r)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		`flatbed_ingester_layers_total{result="unpacked"}`: 2,
		"flatbed_ingester_bytes_written_total":             15,
		"flatbed_ingester_bytes_fetched_total":             120,
		"flatbed_ingester_layer_bytes_total":               0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v; scraped %v", k, v, ok, want, got)
		}
	}
}
