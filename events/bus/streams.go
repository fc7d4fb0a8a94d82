package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

// MaxDeliveriesAdvisory is the subject prefix of the server's advisories for messages a
// consumer gave up on after MaxDeliver deliveries.
const MaxDeliveriesAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."

// StreamMaxBytes bounds the pipeline stream; events are a few KiB each.
var StreamMaxBytes int64 = 8 << 30

// DuplicateWindow is how long JetStream remembers event ids to drop re-publishes.
const DuplicateWindow = 10 * time.Minute

// EnsureStreams creates or updates the pipeline and dead-letter streams with the given number
// of replicas. Every service calls it at start-up; doing so twice is harmless.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if replicas <= 0 {
		replicas = 1
	}
	for _, cfg := range []jetstream.StreamConfig{
		{
			Name:        events.Stream,
			Description: "flatbed pipeline events (CloudEvents, binary mode)",
			Subjects:    []string{events.Prefix + ">"},
			Storage:     jetstream.FileStorage,
			// No age limit: work waiting for a stopped service must not expire. Processed
			// events are swept (Sweep); should the stream still fill up, publishing fails
			// loudly (DiscardNew) instead of old, unprocessed events being dropped.
			Retention:  jetstream.LimitsPolicy,
			MaxBytes:   StreamMaxBytes,
			Discard:    jetstream.DiscardNew,
			Duplicates: DuplicateWindow,
			Replicas:   replicas,
		},
		{
			Name:        events.DeadStream,
			Description: "flatbed messages no handler could read",
			// Unreadable messages, and JetStream's advisories for messages that ran out of
			// deliveries (they name the stream sequence of the message given up on).
			Subjects: []string{events.DeadPrefix + ">", MaxDeliveriesAdvisory + events.Stream + ".>"},
			Storage:  jetstream.FileStorage,
			MaxAge:   30 * 24 * time.Hour,
			Replicas: replicas,
		},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("creating stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}
