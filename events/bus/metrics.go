package bus

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus/metric"
)

type metrics struct {
	handled   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	published *prometheus.CounterVec
	dead      *prometheus.CounterVec
	failed    *prometheus.CounterVec
}

// newMetrics registers the bus metrics on r; a bus registered there before (a second one in
// one process) shares its metrics.
func newMetrics(r prometheus.Registerer) *metrics {
	return &metrics{
		handled: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_events_handled_total", Help: "Events handled, by consumer, type and outcome (ok or error).",
		}, []string{"consumer", "type", "outcome"})),
		duration: metric.Register(r, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flatbed_handler_duration_seconds", Help: "Handler run time, by consumer and type.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"consumer", "type"})),
		published: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_events_published_total", Help: "Events published, by type.",
		}, []string{"type"})),
		dead: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_events_dead_total", Help: "Unreadable messages moved to the dead-letter stream, by consumer.",
		}, []string{"consumer"})),
		failed: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_wishes_given_up_total", Help: "Wishes reported failed by the bus (invalid events, permanent errors, attempts used up), by consumer.",
		}, []string{"consumer"})),
	}
}

func (m *metrics) observe(consumer, typ string, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.handled.WithLabelValues(consumer, typ, outcome).Inc()
	m.duration.WithLabelValues(consumer, typ).Observe(d.Seconds())
}
