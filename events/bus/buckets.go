package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket opens (creating if needed) a JetStream KV bucket of a stage's own, file-backed and
// replicated as the bus's streams are, so that every replica of the stage shares it.
func (b *Bus) Bucket(ctx context.Context, name, description string) (jetstream.KeyValue, error) {
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: description,
		Storage:     jetstream.FileStorage,
		Replicas:    b.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the %s bucket: %w", name, err)
	}
	return kv, nil
}
