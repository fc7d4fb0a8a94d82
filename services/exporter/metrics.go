package exporter

import (
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus/metric"
)

// Metrics are the exporter's Prometheus metrics.
type Metrics struct {
	Images  *prometheus.CounterVec // by result: exported, failed
	Blobs   *prometheus.CounterVec // by result: uploaded, present
	Bytes   prometheus.Counter     // bytes uploaded
	Seconds prometheus.Histogram   // time to export one image
}

// NewMetrics registers the exporter metrics on r; an exporter registered there before (a
// second pipeline in one process) shares its metrics.
func NewMetrics(r prometheus.Registerer) *Metrics {
	return &Metrics{
		Images: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_exporter_images_total",
			Help: "Images exported to a registry-less remote, by result: exported, failed (the remote or the registry refused, or a remote that is not one).",
		}, []string{"result"})),
		Blobs: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_exporter_blobs_total",
			Help: "Blobs of exported images, by result: uploaded (written to the remote now), present (the remote had it: not transferred).",
		}, []string{"result"})),
		Bytes: metric.Register(r, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flatbed_exporter_uploaded_bytes_total",
			Help: "Bytes written to registry-less remotes.",
		})),
		Seconds: metric.Register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flatbed_exporter_export_seconds", Help: "Time to export one image, when it was exported.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		})),
	}
}
