package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

// DescriptionsBucket is the JetStream object store holding the raw manifest and config of
// every resolved image, by digest.
const DescriptionsBucket = "FLATBED_IMAGES"

// Descriptions is the image description store in JetStream: what the resolver read of an
// image, stored once, content-addressed, read back by every later stage and checked against
// the digests the event names. A bounded cache spares re-reading it for every layer.
type Descriptions struct {
	obs jetstream.ObjectStore

	mu    sync.Mutex
	cache map[string]*events.Description // manifest digest + config digest -> description
}

var _ events.Descriptions = (*Descriptions)(nil)

// descriptionCache bounds the descriptions a process keeps in memory.
const descriptionCache = 256

// Descriptions opens the image description store.
func (b *Bus) Descriptions(ctx context.Context) (*Descriptions, error) {
	obs, err := b.js.ObjectStore(ctx, DescriptionsBucket)
	if err != nil {
		return nil, fmt.Errorf("opening the %s object store: %w", DescriptionsBucket, err)
	}
	return &Descriptions{obs: obs, cache: map[string]*events.Description{}}, nil
}

// Put stores d's raw manifest and config, each under its digest, unless already there.
func (s *Descriptions) Put(ctx context.Context, d *events.Description) error {
	for _, o := range []struct {
		digest string
		data   []byte
	}{{d.Image.Digest, d.Manifest}, {d.Image.ConfigDigest, d.RawConfig}} {
		if _, err := s.obs.GetInfo(ctx, o.digest); err == nil {
			continue
		} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
			return fmt.Errorf("storing the description of %s: %w", d.Image.Name, err)
		}
		if _, err := s.obs.PutBytes(ctx, o.digest, o.data); err != nil {
			return fmt.Errorf("storing the description of %s: %w", d.Image.Name, err)
		}
	}
	return nil
}

// Get reads the description of img back and checks it against img's digests.
func (s *Descriptions) Get(ctx context.Context, img events.Image) (*events.Description, error) {
	key := img.Digest + " " + img.ConfigDigest
	s.mu.Lock()
	d, ok := s.cache[key]
	s.mu.Unlock()
	if ok && d.Image.LayerCount == img.LayerCount {
		c := *d
		c.Image = img
		return &c, nil
	}
	manifest, err := s.read(ctx, img, img.Digest, events.MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	config, err := s.read(ctx, img, img.ConfigDigest, events.MaxConfigBytes)
	if err != nil {
		return nil, err
	}
	d, err = events.Describe(img, manifest, config)
	if err != nil {
		return nil, fmt.Errorf("stored description of %s: %w", img.Name, err)
	}
	s.mu.Lock()
	if len(s.cache) >= descriptionCache {
		clear(s.cache)
	}
	s.cache[key] = d
	s.mu.Unlock()
	return d, nil
}

func (s *Descriptions) read(ctx context.Context, img events.Image, digest string, max int) ([]byte, error) {
	info, err := s.obs.GetInfo(ctx, digest)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w %s (%s is not in %s; was the image resolved?)", events.ErrNoDescription, img.Name, digest, DescriptionsBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the description of %s: %w", img.Name, err)
	}
	if info.Size > uint64(max) {
		return nil, fmt.Errorf("stored %s of %s is %d bytes, over the limit of %d", digest, img.Name, info.Size, max)
	}
	b, err := s.obs.GetBytes(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("reading the description of %s: %w", img.Name, err)
	}
	return b, nil
}
