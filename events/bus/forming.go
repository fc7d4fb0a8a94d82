package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream's answers while a cluster is still forming: its nodes started together, and
// the streams' replicas cannot be placed (or nothing leads the metadata) until enough of
// them have found each other.
const (
	errCodeNoSuitablePeers  jetstream.ErrorCode = 10005 // "no suitable peers for placement"
	errCodeTempUnavailable  jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable"
	errCodeClusterNotLeader jetstream.ErrorCode = 10009 // "JetStream cluster can not handle request" (no meta leader)
)

// forming says err is one of those answers.
func forming(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeNoSuitablePeers, errCodeTempUnavailable, errCodeClusterNotLeader:
			return true
		}
	}
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// ensureStreams runs EnsureStreams, again and again for up to Options.ClusterWait while the
// cluster is still forming (services and their NATS nodes started at once by compose,
// systemd or Kubernetes), so a service does not exit for a cluster that is seconds from
// ready; any other error ends it at once.
func (b *Bus) ensureStreams(ctx context.Context, o StreamOptions) error {
	wait := b.opts.ClusterWait
	if wait <= 0 {
		wait = DefaultClusterWait
	}
	deadline := time.Now().Add(wait)
	delay, limit := 250*time.Millisecond, 5*time.Second
	for attempt := 1; ; attempt++ {
		// Each attempt has its own deadline: a request no node of a forming cluster
		// answers waits for its context.
		actx, cancel := context.WithTimeout(ctx, limit)
		err := EnsureStreams(actx, b.js, o)
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			if attempt > 1 {
				b.log.Info("JetStream cluster ready", "attempts", attempt)
			}
			return nil
		}
		left := time.Until(deadline)
		if !(forming(err) || timedOut) || ctx.Err() != nil {
			return err
		}
		if left <= 0 {
			return fmt.Errorf("%w (the JetStream cluster was still not ready after %s: are all %d nodes up and routed to each other?)", err, wait, o.Replicas)
		}
		d := min(delay, left)
		b.log.Warn("JetStream cluster not ready yet; waiting", "attempt", attempt, "retry_in", d.Round(time.Millisecond).String(),
			"gives_up_in", left.Round(100*time.Millisecond).String(), "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the JetStream cluster: %w", ctx.Err())
		case <-time.After(d):
		}
		delay, limit = min(delay*2, 2*time.Second), min(limit*2, 30*time.Second)
	}
}
