package frontdoor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// NotifyConsumer is the durable consumer of the outbound webhooks: every result
// (conversion.completed, conversion.failed) stays in the stream until the receiver has
// taken it, across receiver outages and restarts of flatbed (unless no front door with
// --notify-url runs for ConsumerInactiveThreshold: then the consumer is deleted).
const NotifyConsumer = "frontdoor-notify"

// notifyMaxAttempts bounds the deliveries of one result to the receiver: with the bus's
// back-off (doubling up to 30s) about three days of a receiver being down.
const notifyMaxAttempts = 10000

// Notifier posts every conversion result to a receiver as a CloudEvent over HTTP.
type Notifier struct {
	URL    string // http(s)://…
	Binary bool   // binary mode (attributes in ce- headers); structured (application/cloudevents+json) otherwise
	Log    *slog.Logger
	Client *http.Client
}

// CheckNotifyURL refuses a URL that is not http(s)://HOST/…, naming the flag.
func CheckNotifyURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--notify-url: want http(s)://HOST[:PORT]/PATH")
	}
	return nil
}

// Register adds the notifier's durable consumer to b.
func (n *Notifier) Register(ctx context.Context, b *bus.Bus) error {
	if err := CheckNotifyURL(n.URL); err != nil {
		return err
	}
	if n.Log == nil {
		n.Log = slog.Default()
	}
	if n.Client == nil {
		n.Client = &http.Client{Timeout: 30 * time.Second}
	}
	return b.Handle(ctx, bus.Consumer{Name: NotifyConsumer, Types: []string{events.ConversionCompletedType, events.ConversionFailedType},
		MaxAttempts: notifyMaxAttempts, AckWait: time.Minute, InactiveThreshold: ConsumerInactiveThreshold}, n.Handle)
}

// Handle posts one result (the bus has validated it). A receiver that is down or answers
// other than 2xx gets it again after the bus's back-off; after the last attempt it is
// dropped with a log line, never reported as a failed conversion.
func (n *Notifier) Handle(ctx context.Context, d *bus.Delivery) error {
	err := n.post(ctx, d)
	if err == nil {
		return nil
	}
	if d.LastAttempt() {
		n.Log.Error("giving up posting a result to the webhook receiver", "id", d.Event.ID(), "type", d.Type, "attempts", d.Attempt, "err", err)
		return nil
	}
	if d.Attempt == 1 || d.Attempt%20 == 0 {
		n.Log.Warn("the webhook receiver did not take a result; retrying with back-off", "id", d.Event.ID(), "attempt", d.Attempt, "err", err)
	}
	return err
}

func (n *Notifier) post(ctx context.Context, d *bus.Delivery) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL, nil)
	if err != nil {
		return err
	}
	wctx := binding.WithForceStructured(ctx)
	if n.Binary {
		wctx = binding.WithForceBinary(ctx)
	}
	if err := cehttp.WriteRequest(wctx, binding.ToMessage(d.Event), req); err != nil {
		return fmt.Errorf("writing %s as an HTTP request: %w", d.Event.ID(), err)
	}
	resp, err := n.Client.Do(req)
	if err != nil {
		return fmt.Errorf("posting %s: %w", d.Event.ID(), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("posting %s: the receiver answered %s", d.Event.ID(), resp.Status)
	}
	return nil
}
