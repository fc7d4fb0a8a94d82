package thinpusher

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus/metric"
	"flatbed.dev/pkg/registry"
)

// Metrics are the thin pusher's Prometheus metrics.
type Metrics struct {
	Images   *prometheus.CounterVec // by result: pushed, present, skipped, failed
	Failures *prometheus.CounterVec // failed attempts, by reason
	Lists    *prometheus.CounterVec // thin manifest lists of multi-arch images, by result: pushed, present
	Seconds  prometheus.Histogram   // time to check and push one image's thin image (or list)
}

// The results an image's thin image ends with.
const (
	resultPushed  = "pushed"  // pushed now
	resultPresent = "present" // the target already held the right one: nothing pushed
	resultSkipped = "skipped" // the wish asks for no thin image
	resultFailed  = "failed"
)

// NewMetrics registers the thin pusher's metrics on r; a thin pusher registered there before
// (a second pipeline in one process) shares its metrics.
func NewMetrics(r prometheus.Registerer) *Metrics {
	return &Metrics{
		Images: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_thinpusher_images_total",
			Help: "Images handled by the thin pusher, by result: pushed (its thin image, or a platform's, written now), present (the target already named the right thin image: nothing pushed), skipped (the wish asks for none), failed (given up: a permanent error or the last attempt).",
		}, []string{"result"})),
		Failures: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_thinpusher_failures_total",
			Help: "Failed attempts to push a thin image, by reason: denied (credentials refused), refused (the registry's last word), no_description (the image's description is gone), invalid (a name or platform that cannot be pushed), unavailable (the registry did not answer: tried again).",
		}, []string{"reason"})),
		Lists: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_thinpusher_manifest_lists_total",
			Help: "Thin manifest lists of multi-arch images, by result: pushed, present (the target already named it).",
		}, []string{"result"})),
		Seconds: metric.Register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flatbed_thinpusher_push_seconds", Help: "Time to check and push one image's thin image (every platform's and the list of a multi-arch image), when it was pushed or found present.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		})),
	}
}

// failureReason names why a push failed, for Failures; "" for a shutdown.
func failureReason(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return ""
	case errors.Is(err, events.ErrNoDescription):
		return "no_description"
	case registry.Denied(err):
		return "denied"
	case registry.Final(err):
		return "refused"
	case events.IsPermanent(err):
		return "invalid"
	}
	return "unavailable"
}

// count records the result of one image (nil Metrics: none).
func (m *Metrics) count(result string) {
	if m != nil {
		m.Images.WithLabelValues(result).Inc()
	}
}

// failed records a failed attempt; the image counts as failed when nothing will try it again.
func (m *Metrics) failed(err error, last bool) {
	reason := failureReason(err)
	if m == nil || reason == "" {
		return
	}
	m.Failures.WithLabelValues(reason).Inc()
	if last || events.IsPermanent(err) {
		m.Images.WithLabelValues(resultFailed).Inc()
	}
}
