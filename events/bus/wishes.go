package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

// WishesBucket is the JetStream KV bucket holding the fan-in of wishes that asked for several
// outputs: one key per wish, what each output that has ended produced.
const WishesBucket = "FLATBED_WISHES"

// WishesMaxAge is how long a wish's record outlives its last change. A record is forgotten
// once its wish ends; one whose wish failed, or whose outputs never all end, goes after this
// long. It is far longer than any output waits for a stopped stage.
var WishesMaxAge = 30 * 24 * time.Hour

func wishesConfig(replicas int) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:       WishesBucket,
		Description:  "flatbed wishes with several outputs: what each output that has ended produced (key = wish id)",
		TTL:          WishesMaxAge,
		MaxValueSize: 64 << 10,
		Storage:      jetstream.FileStorage,
		Replicas:     replicas,
	}
}

// Wishes is events.Endings in the WishesBucket. Every change is a compare-and-set on the
// key's revision, so notifiers in several processes never lose each other's records.
type Wishes struct {
	kv jetstream.KeyValue
}

var _ events.Endings = (*Wishes)(nil)

// Wishes opens the wishes bucket (EnsureStreams created it).
func (b *Bus) Wishes(ctx context.Context) (*Wishes, error) {
	kv, err := b.js.KeyValue(ctx, WishesBucket)
	if err != nil {
		return nil, fmt.Errorf("opening the %s bucket: %w", WishesBucket, err)
	}
	return &Wishes{kv: kv}, nil
}

// End records result for output of the wish unless it is recorded already, and returns
// every output's result recorded.
func (w *Wishes) End(ctx context.Context, wishID, output string, result json.RawMessage) (map[string]json.RawMessage, error) {
	key := wishKey(wishID)
	for {
		ended := map[string]json.RawMessage{}
		var rev uint64
		e, err := w.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, fmt.Errorf("reading what ended of wish %s: %w", wishID, err)
		default:
			if err := json.Unmarshal(e.Value(), &ended); err != nil {
				return nil, fmt.Errorf("reading what ended of wish %s: %w", wishID, err)
			}
			rev = e.Revision()
		}
		if _, ok := ended[output]; ok {
			return ended, nil // a redelivery
		}
		ended[output] = result
		data, err := json.Marshal(ended)
		if err != nil {
			return nil, err
		}
		if rev == 0 {
			_, err = w.kv.Create(ctx, key, data)
		} else {
			_, err = w.kv.Update(ctx, key, data, rev)
		}
		switch {
		case err == nil:
			return ended, nil
		case errors.Is(err, jetstream.ErrKeyExists) || revisionMoved(err):
			continue // another output ended at the same moment: read it and try again
		default:
			return nil, fmt.Errorf("recording that %s of wish %s ended: %w", output, wishID, err)
		}
	}
}

// Forget deletes the wish's record.
func (w *Wishes) Forget(ctx context.Context, wishID string) error {
	if err := w.kv.Delete(ctx, wishKey(wishID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("forgetting wish %s: %w", wishID, err)
	}
	return nil
}

// wishKey is the wish id as a KV key: a wish id may hold ':', which a key may not, and never
// '=', which a key may.
func wishKey(wishID string) string { return strings.ReplaceAll(wishID, ":", "=") }
