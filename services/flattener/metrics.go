package flattener

import (
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus/metric"
)

// Metrics are the flattener's Prometheus metrics.
type Metrics struct {
	Images *prometheus.CounterVec // by result: built, present
	Bytes  prometheus.Counter     // bytes of file content written into flat trees
}

// NewMetrics registers the flattener metrics on r; a flattener registered there before (a
// second one in one process, as 'flatbed serve flattener flattener' makes) shares its metrics.
func NewMetrics(r prometheus.Registerer) *Metrics {
	return &Metrics{
		Images: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_flattener_images_total", Help: "Flat trees handled, by result: built here, or present (built before or by another worker).",
		}, []string{"result"})),
		Bytes: metric.Register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flatbed_flattener_bytes_written_total", Help: "Bytes of file content written into flat trees.",
		})),
	}
}
