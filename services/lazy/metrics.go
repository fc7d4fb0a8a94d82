package lazy

import (
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus/metric"
)

// Metrics are the lazy stage's Prometheus metrics.
type Metrics struct {
	Images  *prometheus.CounterVec // by result: converted, cached, failed
	Layers  *prometheus.CounterVec // by result: converted, reused
	Bytes   *prometheus.CounterVec // by kind: source (read), converted (pushed)
	Seconds prometheus.Histogram
}

// NewMetrics registers the lazy stage's metrics on r; a stage registered there before (a
// second pipeline in one process) shares its metrics.
func NewMetrics(r prometheus.Registerer) *Metrics {
	return &Metrics{
		Images: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_lazy_images_total",
			Help: "Images of the lazy output, by result: converted (at least one layer converted or reused), cached (the dedup store knew the whole image: only tagged), failed.",
		}, []string{"result"})),
		Layers: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_lazy_layers_total",
			Help: "Layers of converted images, by result: converted (recompressed now) or reused (the dedup store had them and the target repository still holds the blob, or it was mounted there).",
		}, []string{"result"})),
		Bytes: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_lazy_bytes_total",
			Help: "Bytes of the layers converted, by kind: source (compressed bytes read) and converted (bytes pushed).",
		}, []string{"kind"})),
		Seconds: metric.Register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flatbed_lazy_convert_seconds", Help: "Time to convert and push one image (every platform of an index).",
			Buckets: prometheus.ExponentialBuckets(0.05, 4, 10),
		})),
	}
}
