package flattener

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
	if got := testutil.ToFloat64(a.Images.WithLabelValues("built")); got != 2 {
		t.Errorf("flatbed_flattener_images_total{result=built} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(b.Bytes); got != 7 {
		t.Errorf("flatbed_flattener_bytes_written_total = %v, want 7", got)
	}
}
