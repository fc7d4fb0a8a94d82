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

// consumerCollector reads the server's view of each durable consumer its bus runs: how much
// waits, how much is in flight, how much came again. The values are read in the background,
// so that /metrics stays fast and complete while NATS is away. consumerGauges reports them.
type consumerCollector struct {
	js   jetstream.JetStream
	log  *slog.Logger
	kick chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	names []string
	last  map[string]consumerSample
}

type consumerSample struct {
	info *jetstream.ConsumerInfo
	at   time.Time
}

func newConsumerCollector(js jetstream.JetStream, log *slog.Logger) *consumerCollector {
	c := &consumerCollector{
		js:   js,
		log:  log,
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
		last: map[string]consumerSample{},
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

// samples are the last values read of each consumer (none for one not read yet).
func (c *consumerCollector) samples() map[string]consumerSample {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]consumerSample, len(c.last))
	for _, name := range c.names {
		if s, ok := c.last[name]; ok {
			out[name] = s
		}
	}
	return out
}

// consumerGauges is the collector of the consumer gauges, one per registerer: every bus of
// the process that registers there (a second pipeline, a test) adds its consumers to it, so
// a second bus reports its consumers too instead of being refused as a duplicate. A consumer
// run by two buses is reported once, with the newer values (both read the same consumer
// from the server).
type consumerGauges struct {
	mu    sync.Mutex
	buses map[*consumerCollector]bool

	pending, ackPending, redelivered, waiting, age *prometheus.Desc
}

func newConsumerGauges() *consumerGauges {
	l := []string{"consumer"}
	return &consumerGauges{
		buses:       map[*consumerCollector]bool{},
		pending:     prometheus.NewDesc("flatbed_consumer_pending_messages", "Messages the consumer has not been delivered yet.", l, nil),
		ackPending:  prometheus.NewDesc("flatbed_consumer_ack_pending_messages", "Messages delivered and not yet acknowledged.", l, nil),
		redelivered: prometheus.NewDesc("flatbed_consumer_redelivered_messages", "Messages delivered more than once and not yet acknowledged.", l, nil),
		waiting:     prometheus.NewDesc("flatbed_consumer_waiting_pulls", "Pull requests waiting for messages.", l, nil),
		age: prometheus.NewDesc("flatbed_consumer_info_age_seconds",
			"How old the consumer gauges are: they are read from the server every few seconds, and grow stale while it cannot be reached.", l, nil),
	}
}

// join adds a bus's consumers to the gauges; leave takes them away when the bus closes.
func (g *consumerGauges) join(c *consumerCollector) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.buses[c] = true
}

func (g *consumerGauges) leave(c *consumerCollector) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.buses, c)
}

func (g *consumerGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.pending
	ch <- g.ackPending
	ch <- g.redelivered
	ch <- g.waiting
	ch <- g.age
}

// Collect serves the last values read; it never calls the server.
func (g *consumerGauges) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	all := map[string]consumerSample{}
	for c := range g.buses {
		for name, s := range c.samples() {
			if old, ok := all[name]; !ok || s.at.After(old.at) {
				all[name] = s
			}
		}
	}
	g.mu.Unlock()
	for name, s := range all {
		info := s.info
		ch <- prometheus.MustNewConstMetric(g.pending, prometheus.GaugeValue, float64(info.NumPending), name)
		ch <- prometheus.MustNewConstMetric(g.ackPending, prometheus.GaugeValue, float64(info.NumAckPending), name)
		ch <- prometheus.MustNewConstMetric(g.redelivered, prometheus.GaugeValue, float64(info.NumRedelivered), name)
		ch <- prometheus.MustNewConstMetric(g.waiting, prometheus.GaugeValue, float64(info.NumWaiting), name)
		ch <- prometheus.MustNewConstMetric(g.age, prometheus.GaugeValue, time.Since(s.at).Seconds(), name)
	}
}
