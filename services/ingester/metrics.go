package ingester

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ingester's Prometheus metrics.
type Metrics struct {
	Layers  *prometheus.CounterVec // by result: unpacked, present
	Bytes   prometheus.Counter     // compressed bytes of layers unpacked
	Written prometheus.Counter     // uncompressed tar bytes written into the store
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
	m.Written = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "flatbed_ingester_bytes_written_total", Help: "Uncompressed layer bytes unpacked into the store.",
	})
	r.MustRegister(m.Layers, m.Bytes, m.Written, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "flatbed_ingester_bytes_fetched_total", Help: "Compressed layer bytes read from registries, including attempts that failed.",
	}, func() float64 { return float64(m.fetched.Load()) }))
	return m
}
