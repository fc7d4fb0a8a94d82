package ingester

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus/metric"
)

// Metrics are the ingester's Prometheus metrics.
type Metrics struct {
	Layers  *prometheus.CounterVec // by result: unpacked, present
	Bytes   prometheus.Counter     // compressed bytes of layers unpacked
	Written prometheus.Counter     // uncompressed tar bytes written into the store
	fetched atomic.Int64
}

// NewMetrics registers the ingester metrics on r; an ingester registered there before (a
// second one in one process, as 'flatbed serve ingester ingester' makes) shares its metrics,
// and the bytes both fetch add up in one series.
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		Layers: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_ingester_layers_total", Help: "Layers handled, by result: unpacked (fetched and written) or present (deduplicated, nothing fetched).",
		}, []string{"result"})),
		Bytes: metric.Register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flatbed_ingester_layer_bytes_total", Help: "Compressed bytes of the layers unpacked.",
		})),
		Written: metric.Register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flatbed_ingester_bytes_written_total", Help: "Uncompressed layer bytes unpacked into the store.",
		})),
	}
	fetched := &sumCounter{}
	fetched.CounterFunc = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "flatbed_ingester_bytes_fetched_total", Help: "Compressed layer bytes read from registries, including attempts that failed.",
	}, fetched.sum)
	metric.Register(r, fetched).add(&m.fetched)
	return m
}

// sumCounter is a counter read from the fetched tallies of every ingester registered with it
// (the blob streams add to an atomic, cheaper per read than a prometheus.Counter).
type sumCounter struct {
	prometheus.CounterFunc
	mu    sync.Mutex
	parts []*atomic.Int64
}

func (s *sumCounter) add(p *atomic.Int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parts = append(s.parts, p)
}

func (s *sumCounter) sum() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, p := range s.parts {
		n += p.Load()
	}
	return float64(n)
}
