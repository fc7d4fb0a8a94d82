package bus

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
)

// ConsumerInfoInterval is how often the bus reads the server's view of its consumers for
// /metrics. A scrape never waits for the server: it gets the last values read, with their age.
var ConsumerInfoInterval = 2 * time.Second

// consumerCollector reports the server's view of each durable consumer this process runs:
// how much waits, how much is in flight, how much came again. The values are read in the
// background, so that /metrics stays fast and complete while NATS is away.
type consumerCollector struct {
	js   jetstream.JetStream
	log  *slog.Logger
	kick chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	names []string
	last  map[string]consumerSample

	pending, ackPending, redelivered, waiting, age *prometheus.Desc
}

type consumerSample struct {
	info *jetstream.ConsumerInfo
	at   time.Time
}

func newConsumerCollector(js jetstream.JetStream, log *slog.Logger) *consumerCollector {
	l := []string{"consumer"}
	c := &consumerCollector{
		js:          js,
		log:         log,
		kick:        make(chan struct{}, 1),
		done:        make(chan struct{}),
		last:        map[string]consumerSample{},
		pending:     prometheus.NewDesc("flatbed_consumer_pending_messages", "Messages the consumer has not been delivered yet.", l, nil),
		ackPending:  prometheus.NewDesc("flatbed_consumer_ack_pending_messages", "Messages delivered and not yet acknowledged.", l, nil),
		redelivered: prometheus.NewDesc("flatbed_consumer_redelivered_messages", "Messages delivered more than once and not yet acknowledged.", l, nil),
		waiting:     prometheus.NewDesc("flatbed_consumer_waiting_pulls", "Pull requests waiting for messages.", l, nil),
		age: prometheus.NewDesc("flatbed_consumer_info_age_seconds",
			"How old the consumer gauges are: they are read from the server every few seconds, and grow stale while it cannot be reached.", l, nil),
	}
	go c.refreshLoop()
	return c
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
	select {
	case c.kick <- struct{}{}: // read the new consumer now, not at the next tick
	default:
	}
}

func (c *consumerCollector) stop() { c.once.Do(func() { close(c.done) }) }

func (c *consumerCollector) refreshLoop() {
	t := time.NewTicker(ConsumerInfoInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		case <-c.kick:
		}
		c.refresh()
	}
}

// refresh reads every consumer's info, each read bounded so that one unanswered request
// does not hold the others.
func (c *consumerCollector) refresh() {
	c.mu.Lock()
	names := append([]string(nil), c.names...)
	c.mu.Unlock()
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), ConsumerInfoInterval)
		info, err := consumerInfo(ctx, c.js, name)
		cancel()
		if err != nil {
			c.log.Debug("reading consumer info", "consumer", name, "err", err)
			continue // the last values stay, and grow older
		}
		c.mu.Lock()
		c.last[name] = consumerSample{info: info, at: time.Now()}
		c.mu.Unlock()
	}
}

func consumerInfo(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.ConsumerInfo, error) {
	cons, err := js.Consumer(ctx, events.Stream, name)
	if err != nil {
		return nil, err
	}
	return cons.Info(ctx)
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redelivered
	ch <- c.waiting
	ch <- c.age
}

// Collect serves the last values read; it never calls the server.
func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range c.names {
		s, ok := c.last[name]
		if !ok {
			continue // not read yet
		}
		info := s.info
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending), name)
		ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(info.NumAckPending), name)
		ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(info.NumRedelivered), name)
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(info.NumWaiting), name)
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, time.Since(s.at).Seconds(), name)
	}
}
