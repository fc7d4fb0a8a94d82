package lazy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/pkg/lazy"
)

// DedupBucket is the JetStream KV bucket of converted layers and images.
const DedupBucket = "FLATBED_LAZY"

// KV is lazy.Dedup in a JetStream KV bucket, shared by every replica of the stage. Keys:
// layer.<format>.<chain ID hex> and manifest.<format>.<key hash>.<source digest hex>.
type KV struct{ kv jetstream.KeyValue }

var _ lazy.Dedup = (*KV)(nil)

// NewKV keeps the dedup records in kv.
func NewKV(kv jetstream.KeyValue) *KV { return &KV{kv: kv} }

func layerKey(k lazy.LayerKey) string { return "layer." + k.Format + "." + k.ChainID.Hex }

func manifestKey(k lazy.ManifestKey) string {
	// The media type and referrer flag in a short hash: KV keys take [-/_=.a-zA-Z0-9] only.
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%t", k.MediaType, k.Referrer)))
	return "manifest." + k.Format + "." + hex.EncodeToString(h[:6]) + "." + k.Source.Hex
}

func (s *KV) get(ctx context.Context, key string) (lazy.Blob, bool, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return lazy.Blob{}, false, nil
	}
	if err != nil {
		return lazy.Blob{}, false, fmt.Errorf("reading %s from the %s bucket: %w", key, DedupBucket, err)
	}
	var b lazy.Blob
	if err := json.Unmarshal(e.Value(), &b); err != nil {
		// A record nobody can read is as good as none: the layer is converted again.
		return lazy.Blob{}, false, nil
	}
	return b, true, nil
}

func (s *KV) put(ctx context.Context, key string, b lazy.Blob) error {
	v, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, key, v); err != nil {
		return fmt.Errorf("writing %s to the %s bucket: %w", key, DedupBucket, err)
	}
	return nil
}

func (s *KV) Layer(ctx context.Context, k lazy.LayerKey) (lazy.Blob, bool, error) {
	return s.get(ctx, layerKey(k))
}

func (s *KV) PutLayer(ctx context.Context, k lazy.LayerKey, b lazy.Blob) error {
	return s.put(ctx, layerKey(k), b)
}

func (s *KV) Manifest(ctx context.Context, k lazy.ManifestKey) (lazy.Blob, bool, error) {
	return s.get(ctx, manifestKey(k))
}

func (s *KV) PutManifest(ctx context.Context, k lazy.ManifestKey, b lazy.Blob) error {
	return s.put(ctx, manifestKey(k), b)
}
