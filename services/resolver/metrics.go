package resolver

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus/metric"
	"flatbed.dev/pkg/registry"
)

// Metrics are the resolver's Prometheus metrics.
type Metrics struct {
	Images    *prometheus.CounterVec // by result: resolved, already_converted, failed
	Failures  *prometheus.CounterVec // failed attempts, by reason
	Platforms *prometheus.CounterVec // platforms of the indexes tags named, by result: chosen, skipped
	PerIndex  prometheus.Histogram   // platforms of one index
	Mended    *prometheus.CounterVec // layers and flat trees found changed and removed, by part
}

// NewMetrics registers the resolver's metrics on r; a resolver registered there before (a
// second pipeline in one process) shares its metrics.
func NewMetrics(r prometheus.Registerer) *Metrics {
	return &Metrics{
		Images: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_resolver_images_total",
			Help: "Wished images, by result: resolved (to be converted), already_converted (the store holds it: nothing to unpack), failed (given up: a permanent error or the last attempt).",
		}, []string{"result"})),
		Failures: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_resolver_failures_total",
			Help: "Failed attempts to resolve a wish, by reason: not_found (no such image or tag), denied (credentials refused), refused (the registry's other last words: no such host, a bad certificate, …), invalid (a wish or image flatbed cannot take: a wildcard, too many layers, a schema 1 manifest, …), unavailable (the store or the bus did not answer: tried again).",
		}, []string{"reason"})),
		Platforms: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_resolver_platforms_total",
			Help: "Platforms of the indexes (multi-arch images) wished tags named, by result: chosen (converted: every linux one with -m, else the host's), skipped (not converted without -m, or not linux).",
		}, []string{"result"})),
		Mended: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_resolver_mended_total",
			Help: "Parts of converted images found changed since they were made (their walk against the recorded tally) and removed so the conversion makes them again, by part: layer, flat.",
		}, []string{"part"})),
		PerIndex: metric.Register(r, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "flatbed_resolver_index_platforms", Help: "Platforms of each index (multi-arch image) a wished tag named.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 32},
		})),
	}
}

// resolved counts an image.resolved published for res.
func (m *Metrics) resolved(res *resolution, alreadyConverted bool) {
	if m == nil {
		return
	}
	result := "resolved"
	if alreadyConverted {
		result = "already_converted"
	}
	m.Images.WithLabelValues(result).Inc()
	if !res.Multi && len(res.Index) == 0 {
		return // a manifest, not an index
	}
	m.Platforms.WithLabelValues("chosen").Add(float64(len(res.Descs)))
	m.Platforms.WithLabelValues("skipped").Add(float64(len(res.Skipped)))
	m.PerIndex.Observe(float64(len(res.Descs) + len(res.Skipped)))
}

// failed counts a failed attempt; the image counts as failed when nothing will try it again.
func (m *Metrics) failed(err error, last bool) {
	if m == nil || err == nil || errors.Is(err, context.Canceled) {
		return
	}
	reason := "unavailable"
	switch {
	case registry.NotFound(err):
		reason = "not_found"
	case registry.Denied(err):
		reason = "denied"
	case registry.Final(err):
		reason = "refused"
	case events.IsPermanent(err):
		reason = "invalid"
	}
	m.Failures.WithLabelValues(reason).Inc()
	if last || events.IsPermanent(err) {
		m.Images.WithLabelValues("failed").Inc()
	}
}

// mended counts a layer or flat tree removed because it changed since it was made.
func (m *Metrics) mended(part string) {
	if m == nil {
		return
	}
	m.Mended.WithLabelValues(part).Inc()
}
