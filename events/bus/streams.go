package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

// MaxDeliveriesAdvisory is the subject prefix of the server's advisories for messages a
// consumer gave up on after MaxDeliver deliveries.
const MaxDeliveriesAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."

// DefaultStreamMaxBytes bounds a new pipeline stream when nothing else is said; events are a
// few KiB each. The embedded server sizes it to its file system instead (EmbeddedOptions).
const DefaultStreamMaxBytes int64 = 8 << 30

// StreamOptions are the settings of the streams that may differ between installations.
type StreamOptions struct {
	Replicas int
	// MaxBytes bounds the pipeline stream. 0 keeps the limit of an existing stream (so that
	// processes joining a server do not change what its operator set) and creates a new one
	// with DefaultStreamMaxBytes.
	MaxBytes int64
}

// DuplicateWindow is how long JetStream remembers event ids to drop re-publishes.
const DuplicateWindow = 10 * time.Minute

// EnsureStreams creates or updates the pipeline and dead-letter streams. Every service calls
// it at start-up; doing so twice is harmless.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	replicas := max(o.Replicas, 1)
	maxBytes := o.MaxBytes
	if maxBytes == 0 {
		maxBytes = DefaultStreamMaxBytes
		if s, err := js.Stream(ctx, events.Stream); err == nil {
			maxBytes = s.CachedInfo().Config.MaxBytes
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("opening stream %s: %w", events.Stream, err)
		}
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
			MaxBytes:   maxBytes,
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
			return fmt.Errorf("creating stream %s: %w", cfg.Name, storageHint(err, cfg.MaxBytes))
		}
	}
	if err := declareConsumers(ctx, js); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      DescriptionsBucket,
		Description: "flatbed image descriptions: raw manifests and configs, by digest",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}); err != nil {
		return fmt.Errorf("creating the %s object store: %w", DescriptionsBucket, err)
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, wishesConfig(replicas)); err != nil {
		return fmt.Errorf("creating the %s bucket: %w", WishesBucket, err)
	}
	return nil
}

// declareConsumers creates the durable consumer of every pipeline stage that does not have
// one yet, so the janitor keeps what a stage has not seen even before the stage first
// starts. A stage's own settings (ack wait, deliveries) are applied when it starts.
func declareConsumers(ctx context.Context, js jetstream.JetStream) error {
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", events.Stream, err)
	}
	for name, types := range events.Consumers() {
		_, err := stream.Consumer(ctx, name)
		if err == nil {
			continue
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("looking up consumer %s: %w", name, err)
		}
		_, err = stream.CreateConsumer(ctx, consumerConfig(name, types, 30*time.Second, 8))
		if err != nil && !errors.Is(err, jetstream.ErrConsumerExists) {
			return fmt.Errorf("declaring consumer %s: %w", name, err)
		}
	}
	return nil
}

// errCodeStorageExceeded is JetStream's "insufficient storage resources available".
const errCodeStorageExceeded jetstream.ErrorCode = 10047

// storageHint explains the server's refusal to reserve a stream's bytes.
func storageHint(err error, maxBytes int64) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeStorageExceeded {
		return err
	}
	if maxBytes <= 0 {
		return fmt.Errorf("%w: the NATS server's file storage is full", err)
	}
	return fmt.Errorf("%w: the NATS server cannot set aside %s for it; give the server more storage "+
		"(max_file_store, or free space where it keeps JetStream) or pass a smaller --stream-max-bytes", err, FormatBytes(maxBytes))
}
