package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// defaultNATSWait is how long a command given --nats waits for the server to come up.
const defaultNATSWait = 30 * time.Second

// waitForNATS returns once a NATS server answers at natsURL, trying again for up to wait
// while none does (a service started before its server, as systemd or compose may start
// them), logging each wait. Other failures, such as a refused login, end it at once.
func waitForNATS(ctx context.Context, log *slog.Logger, natsURL string, wait time.Duration) error {
	shown := redactURLs(natsURL)
	deadline := time.Now().Add(wait)
	delay := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		nc, err := nats.Connect(natsURL, nats.Name("flatbed/probe"), nats.Timeout(2*time.Second))
		if err == nil {
			nc.Close()
			if attempt > 1 {
				log.Info("NATS server reachable", "url", shown, "attempts", attempt)
			}
			return nil
		}
		if !unreachable(err) {
			return fmt.Errorf("connecting to NATS at %s: %w", shown, err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("no NATS server answered at %s within %s (%v): start it first (nats-server -js, or flatbed serve without --nats), check the --nats URL, or wait longer with --nats-wait",
				shown, wait, err)
		}
		d := min(delay, left)
		log.Warn("NATS server not reachable yet; waiting", "url", shown, "attempt", attempt, "retry_in", d.Round(time.Millisecond).String(),
			"gives_up_in", left.Round(100*time.Millisecond).String(), "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for NATS at %s: %w", shown, ctx.Err())
		case <-time.After(d):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// unreachable says nothing answered (yet): no server listening, a timeout, a connection
// closed during the handshake of a server still starting.
func unreachable(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, io.EOF) || errors.As(err, &ne)
}

// redactURLs hides the passwords of a comma-separated NATS URL list: they never reach logs
// or errors.
func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				parts[i] = u.Redacted()
			} else {
				parts[i] = u.Scheme + "://xxxxx@" + u.Host // a token
			}
		}
	}
	return strings.Join(parts, ",")
}
