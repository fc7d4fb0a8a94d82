package metric

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
	got, err := Scrape(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[`flatbed_test_total{result="x"}`] != 2 {
		t.Errorf("scraped %v, want one series flatbed_test_total{result=\"x\"} at 2", got)
	}
}

func TestScrape(t *testing.T) {
	r := prometheus.NewRegistry()
	c := Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "flatbed_a_total", Help: "a"}, []string{"result", "kind"}))
	h := Register(r, prometheus.NewHistogram(prometheus.HistogramOpts{Name: "flatbed_b_seconds", Help: "b"}))
	c.WithLabelValues("ok", "x").Add(3)
	h.Observe(2)
	h.Observe(0.5)
	got, err := Scrape(r)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{`flatbed_a_total{kind="x",result="ok"}`: 3, "flatbed_b_seconds_count": 2, "flatbed_b_seconds_sum": 2.5} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v (scraped %v)", k, got[k], want, got)
		}
	}
}
