package ingester

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ingester's Prometheus metrics.
type Metrics struct {
	Layers  *prometheus.CounterVec // by result: unpacked, present
	Bytes   prometheus.Counter     // compressed bytes of layers unpacked
	fetched atomic.Int64
}

// NewMetrics registers the ingester metrics on r.
func NewMetrics(r prometheus.Registerer) *Metrics {
	m := &Metrics{
		Layers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_ingester_layers_total", Help: "Layers handled, by result: unpacked (fetched and written) or present (deduplicated, nothing fetched).",
		}, []string{"result"}),
		Bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flatbed_ingester_layer_bytes_total", Help: "Compressed bytes of the layers unpacked.",
		}),
	}
	r.MustRegister(m.Layers, m.Bytes, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "flatbed_ingester_bytes_fetched_total", Help: "Compressed layer bytes read from registries, including attempts that failed.",
	}, func() float64 { return float64(m.fetched.Load()) }))
	return m
}
