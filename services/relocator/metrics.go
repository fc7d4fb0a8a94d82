package relocator

import (
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus/metric"
)

// Metrics are the relocator's Prometheus metrics.
type Metrics struct {
	Images  *prometheus.CounterVec // by result: relocated, digest_changed, failed
	Seconds prometheus.Histogram   // time to copy and check one image
}

// NewMetrics registers the relocator metrics on r; a relocator registered there before (a
// second pipeline in one process) shares its metrics.
func NewMetrics(r prometheus.Registerer) *Metrics {
	return &Metrics{
		Images: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_relocator_images_total",
			Help: "Images relocated, by result: relocated (every digest kept), digest_changed (the target changed one: the wish failed), failed (the registry's last word or a name that cannot be relocated).",
		}, []string{"result"})),
		Seconds: metric.Register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flatbed_relocator_copy_seconds", Help: "Time to copy one image and read its digests back, when it was relocated.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		})),
	}
}
