package bus

import (
	"context"
	"crypto/sha256"
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
	obs    jetstream.ObjectStore
	stream jetstream.Stream // the object store's own stream, to count an object's chunks

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
	stream, err := b.js.Stream(ctx, "OBJ_"+DescriptionsBucket)
	if err != nil {
		return nil, fmt.Errorf("opening the %s object store: %w", DescriptionsBucket, err)
	}
	return &Descriptions{obs: obs, stream: stream, cache: map[string]*events.Description{}}, nil
}

// Put stores d's raw manifest and config, each under its digest, unless already there whole.
func (s *Descriptions) Put(ctx context.Context, d *events.Description) error {
	for _, o := range []struct {
		digest string
		data   []byte
	}{{d.Image.Digest, d.Manifest}, {d.Image.ConfigDigest, d.RawConfig}} {
		if err := s.store(ctx, o.digest, o.data); err != nil {
			return fmt.Errorf("storing the description of %s: %w", d.Image.Name, err)
		}
	}
	return nil
}

// store puts data under digest unless a whole copy of it is already there. An object whose
// meta message is there is not necessarily whole: a put cut short by a lost connection can
// store the meta (sent after the chunks without waiting for them) while a chunk was lost, and
// then purges the chunks it did store. Skipping on the meta alone left such an image unreadable
// for good: every reader waited for chunks that never came (CI, a NATS node killed mid-put).
func (s *Descriptions) store(ctx context.Context, digest string, data []byte) error {
	info, err := s.obs.GetInfo(ctx, digest)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
	case err != nil:
		return err
	default:
		if info.Size == uint64(len(data)) && info.Digest == objectDigest(data) {
			have, err := s.chunks(ctx, info)
			if err != nil {
				return err
			}
			if have == uint64(info.Chunks) {
				return nil
			}
		}
	}
	_, err = s.obs.PutBytes(ctx, digest, data)
	return err
}

// chunks counts the stored chunks of the object info describes.
func (s *Descriptions) chunks(ctx context.Context, info *jetstream.ObjectInfo) (uint64, error) {
	if info.Chunks == 0 {
		return 0, nil
	}
	subject := "$O." + DescriptionsBucket + ".C." + info.NUID
	si, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, fmt.Errorf("counting the stored chunks of %s: %w", info.Name, err)
	}
	return si.State.Subjects[subject], nil
}

// objectDigest is the digest the object store records for data.
func objectDigest(data []byte) string {
	h := sha256.New()
	h.Write(data)
	return jetstream.GetObjectDigestValue(h)
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
	// A put cut short leaves the meta without its chunks (see store): say so now, rather
	// than wait for chunks that never come. Resolving the image again stores it whole.
	if have, err := s.chunks(ctx, info); err != nil {
		return nil, fmt.Errorf("reading the description of %s: %w", img.Name, err)
	} else if have != uint64(info.Chunks) {
		return nil, fmt.Errorf("stored %s of %s is incomplete (%d of %d chunks: its store was cut short); the resolver stores it again when it retries, or resolve the image again", digest, img.Name, have, info.Chunks)
	}
	b, err := s.obs.GetBytes(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("reading the description of %s: %w", img.Name, err)
	}
	return b, nil
}
