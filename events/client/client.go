package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

// Client publishes wishes to a flatbed pipeline and reads their results.
type Client struct {
	js          jetstream.JetStream
	source      string
	correlation string
	log         *slog.Logger
	poll        time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithSource sets the CloudEvents source of the wishes the client publishes (default
// "flatbed/client").
func WithSource(source string) Option { return func(c *Client) { c.source = source } }

// WithCorrelationID sets the correlation id of the wishes that do not name one; by default
// every Client makes its own, so the wishes of one Client make one run.
func WithCorrelationID(id string) Option { return func(c *Client) { c.correlation = id } }

// WithLogger receives the results Follow skips (unreadable or invalid) and read errors it
// retries; by default they are not logged.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithPollInterval sets how long Follow waits before looking again when it has read every
// result stored so far (default 200ms).
func WithPollInterval(d time.Duration) Option { return func(c *Client) { c.poll = d } }

// New returns a client using the JetStream of nc.
func New(nc *nats.Conn, opts ...Option) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("opening JetStream: %w", err)
	}
	c := &Client{js: js, source: "flatbed/client", correlation: newID(), log: slog.New(slog.DiscardHandler), poll: 200 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	if c.poll <= 0 {
		c.poll = 200 * time.Millisecond
	}
	return c, nil
}

// CorrelationID is the correlation id of the wishes that do not name one.
func (c *Client) CorrelationID() string { return c.correlation }

// stream opens the pipeline's stream, saying what is wrong when there is none.
func (c *Client) stream(ctx context.Context) (jetstream.Stream, error) {
	s, err := c.js.Stream(ctx, events.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("opening stream %s: %w (no flatbed pipeline has run on this NATS server: start one, e.g. flatbed serve)", events.Stream, err)
	}
	if err != nil {
		return nil, fmt.Errorf("opening stream %s: %w", events.Stream, err)
	}
	return s, nil
}

// newID is a random wish or correlation id (26 letters and digits).
func newID() string { return rand.Text() }
