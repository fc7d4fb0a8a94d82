package frontdoor

import (
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus/metric"
)

// Metrics are the front door's Prometheus metrics.
type Metrics struct {
	Requests *prometheus.CounterVec // by route and status code
	Webhooks *prometheus.CounterVec // pushed/deleted images by source and outcome
}

// NewMetrics registers the front-door metrics on r; a front door registered there before (a
// second one in one process) shares its metrics.
func NewMetrics(r prometheus.Registerer) *Metrics {
	return &Metrics{
		Requests: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_frontdoor_requests_total",
			Help: "HTTP requests the front door answered, by route (its pattern) and status code.",
		}, []string{"route", "code"})),
		Webhooks: metric.Register(r, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flatbed_frontdoor_webhook_images_total",
			Help: "Images named by registry webhooks, by source (distribution, harbor) and outcome (wished, duplicate, withdrawn, ignored).",
		}, []string{"source", "outcome"})),
	}
}
