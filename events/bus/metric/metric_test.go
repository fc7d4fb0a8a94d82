package metric

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A second registration of the same counter returns the first, so both count into one series.
func TestRegisterSharesTheFirst(t *testing.T) {
	r := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "flatbed_test_total", Help: "test"}
	a := Register(r, prometheus.NewCounterVec(opts, []string{"result"}))
	b := Register(r, prometheus.NewCounterVec(opts, []string{"result"}))
	if a != b {
		t.Fatal("the second registration returned a new collector")
	}
	a.WithLabelValues("x").Inc()
	b.WithLabelValues("x").Inc()
	if got := testutil.ToFloat64(a.WithLabelValues("x")); got != 2 {
		t.Errorf("counted %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(r, "flatbed_test_total"); err != nil || n != 1 {
		t.Errorf("gathered %d series (%v), want 1", n, err)
	}
}
