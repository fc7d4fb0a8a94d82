package notifier

import (
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus/metric"
)

// Metrics are the notifier's Prometheus metrics: how wishes end.
type Metrics struct {
	Conversions *prometheus.CounterVec   // wishes ended, by result: converted, already_converted, failed
	Failures    *prometheus.CounterVec   // failed wishes, by the stage that failed
	Seconds     *prometheus.HistogramVec // from submission to the end, by result: completed, failed
	Lines       *prometheus.CounterVec   // notification lines written, by action
}

// NewMetrics registers the notifier's metrics on r; a notifier registered there before (a
// second pipeline in one process) shares its metrics.
func NewMetrics(r prometheus.Registerer) *Metrics {
	return &Metrics{
		Conversions: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_notifier_conversions_total",
			Help: "Wishes ended (conversion.completed or conversion.failed published), by result: converted, already_converted (the store held the image: nothing converted), failed.",
		}, []string{"result"})),
		Failures: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_notifier_failures_total",
			Help: "Failed wishes, by the stage that gave up on them (resolver, ingester, flattener, thinpusher, relocator, lazy, exporter; other for a stage flatbed does not run).",
		}, []string{"stage"})),
		Seconds: metric.Register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "flatbed_notifier_wish_seconds",
			Help:    "Time from a wish's submission to its end, by result: completed, failed.",
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 10),
		}, []string{"result"})),
		Lines: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_notifier_lines_written_total",
			Help: "DUCC notification lines written to the notification file, by action.",
		}, []string{"action"})),
	}
}

// completed counts a wish that ended converted.
func (m *Metrics) completed(c events.ConversionCompleted, submitted bool) {
	if m == nil {
		return
	}
	result := "converted"
	if c.AlreadyConverted {
		result = "already_converted"
	}
	m.Conversions.WithLabelValues(result).Inc()
	if submitted {
		m.Seconds.WithLabelValues("completed").Observe(c.Seconds)
	}
}

// failed counts a wish that ended failed.
func (m *Metrics) failed(f events.ConversionFailed, submitted bool) {
	if m == nil {
		return
	}
	m.Conversions.WithLabelValues("failed").Inc()
	stage := f.Stage
	if _, ok := events.Consumers()[stage]; !ok {
		stage = "other" // anyone on the bus may name a stage: keep the series few
	}
	m.Failures.WithLabelValues(stage).Inc()
	if submitted {
		m.Seconds.WithLabelValues("failed").Observe(f.Seconds)
	}
}

// line counts a notification line written.
func (m *Metrics) line(action string) {
	if m != nil {
		m.Lines.WithLabelValues(action).Inc()
	}
}
