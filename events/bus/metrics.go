package bus

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	handled   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	published *prometheus.CounterVec
	dead      *prometheus.CounterVec
	failed    *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_events_handled_total", Help: "Events handled, by consumer, type and outcome (ok or error).",
		}, []string{"consumer", "type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "flatbed_handler_duration_seconds", Help: "Handler run time, by consumer and type.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"consumer", "type"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_events_published_total", Help: "Events published, by type.",
		}, []string{"type"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_events_dead_total", Help: "Unreadable messages moved to the dead-letter stream, by consumer.",
		}, []string{"consumer"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_wishes_given_up_total", Help: "Wishes reported failed by the bus (invalid events, permanent errors, attempts used up), by consumer.",
		}, []string{"consumer"}),
	}
	for _, c := range []prometheus.Collector{m.handled, m.duration, m.published, m.dead, m.failed} {
		if err := r.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				switch c {
				case m.handled:
					m.handled = are.ExistingCollector.(*prometheus.CounterVec)
				case m.duration:
					m.duration = are.ExistingCollector.(*prometheus.HistogramVec)
				case m.published:
					m.published = are.ExistingCollector.(*prometheus.CounterVec)
				case m.dead:
					m.dead = are.ExistingCollector.(*prometheus.CounterVec)
				case m.failed:
					m.failed = are.ExistingCollector.(*prometheus.CounterVec)
				}
			}
		}
	}
	return m
}

func (m *metrics) observe(consumer, typ string, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.handled.WithLabelValues(consumer, typ, outcome).Inc()
	m.duration.WithLabelValues(consumer, typ).Observe(d.Seconds())
}
