package bus

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
)

// consumerCollector reports, at scrape time, the server's view of each durable consumer this
// process runs: how much waits, how much is in flight, how much came again.
type consumerCollector struct {
	js    jetstream.JetStream
	mu    sync.Mutex
	names []string

	pending, ackPending, redelivered, waiting *prometheus.Desc
}

func newConsumerCollector(js jetstream.JetStream) *consumerCollector {
	l := []string{"consumer"}
	return &consumerCollector{
		js:          js,
		pending:     prometheus.NewDesc("flatbed_consumer_pending_messages", "Messages the consumer has not been delivered yet.", l, nil),
		ackPending:  prometheus.NewDesc("flatbed_consumer_ack_pending_messages", "Messages delivered and not yet acknowledged.", l, nil),
		redelivered: prometheus.NewDesc("flatbed_consumer_redelivered_messages", "Messages delivered more than once and not yet acknowledged.", l, nil),
		waiting:     prometheus.NewDesc("flatbed_consumer_waiting_pulls", "Pull requests waiting for messages.", l, nil),
	}
}

func (c *consumerCollector) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.names {
		if n == name {
			return
		}
	}
	c.names = append(c.names, name)
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redelivered
	ch <- c.waiting
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	names := append([]string(nil), c.names...)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, name := range names {
		cons, err := c.js.Consumer(ctx, events.Stream, name)
		if err != nil {
			continue // the scrape goes on; the server may be reconnecting
		}
		info, err := cons.Info(ctx)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending), name)
		ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(info.NumAckPending), name)
		ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(info.NumRedelivered), name)
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(info.NumWaiting), name)
	}
}
