// Package metric registers the services' Prometheus collectors so that a second service of
// the same kind in one process (a second pipeline, a test) shares the first one's metrics
// instead of failing to register them.
package metric

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on r and returns it, or, when r already holds a collector of the same
// description, that one (so that both count into one series). Any other refusal (a metric
// of the same name with other labels: a programming error) leaves c unregistered and
// returns it, so that counting into it never fails.
func Register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	var are prometheus.AlreadyRegisteredError
	if err := r.Register(c); errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	return c
}
