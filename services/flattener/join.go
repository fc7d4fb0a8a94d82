package flattener

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/store"
)

// The join waits for every layer of an image to be in the store. A layer that was ingested
// and then went missing before the image was flattened (removed by hand, by a garbage
// collection run without --nats, lost by the disk) would make it wait for ever: no other
// layer.ingested of the wish is coming. So the flattener remembers, per wish, image and
// layer, that the layer was reported ingested (Joins, a JetStream KV bucket shared by every
// flattener, so it survives restarts), and when a layer it remembers is missing it asks
// for it again: a layer.requested whose Again counts the requests, the id derived from
// wish, image, layer and Again, so a storm of redeliveries publishes it once. The ingester's
// layer.ingested for it carries Again in its id, so JetStream's duplicate window does not
// drop it, and it completes the join. After events.MaxAgain requests the wish fails naming
// the layer.

// Joins remembers which layers of an image a wish saw ingested, and how often they were
// requested again since.
type Joins interface {
	// Seen records that layer key was reported ingested with Again n (the highest n seen is
	// kept).
	Seen(ctx context.Context, key string, n int) error
	// Ingested says whether layer key was reported ingested, and the highest Again seen.
	Ingested(ctx context.Context, key string) (seen bool, again int, err error)
}

// JoinsBucket is the JetStream KV bucket of the flattener's Joins.
const JoinsBucket = "FLATBED_FLATTENER_JOINS"

// joinsTTL is how long a record is kept: far longer than a conversion waits for its layers.
const joinsTTL = 7 * 24 * time.Hour

// openJoins opens (creating if needed) the Joins bucket on b.
func openJoins(ctx context.Context, b *bus.Bus) (Joins, error) {
	kv, err := b.JetStream().CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      JoinsBucket,
		Description: "flatbed flattener: the layers each wish saw ingested, so that one missing from the store afterwards is requested again",
		Storage:     jetstream.FileStorage,
		Replicas:    b.Replicas(),
		TTL:         joinsTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the %s bucket: %w", JoinsBucket, err)
	}
	return kvJoins{kv}, nil
}

type kvJoins struct{ kv jetstream.KeyValue }

func (j kvJoins) Seen(ctx context.Context, key string, n int) error {
	seen, had, err := j.Ingested(ctx, key)
	if err != nil {
		return err
	}
	if seen && had >= n {
		return nil
	}
	if _, err := j.kv.Put(ctx, key, []byte(strconv.Itoa(n))); err != nil {
		return fmt.Errorf("recording an ingested layer in %s: %w", JoinsBucket, err)
	}
	return nil
}

func (j kvJoins) Ingested(ctx context.Context, key string) (bool, int, error) {
	e, err := j.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("reading %s: %w", JoinsBucket, err)
	}
	n, _ := strconv.Atoi(string(e.Value()))
	return true, n, nil
}

// memJoins keeps the records in memory: for a Service used without a bus (tests).
type memJoins struct{ m sync.Map }

func (j *memJoins) Seen(_ context.Context, key string, n int) error {
	if v, ok := j.m.Load(key); !ok || v.(int) < n {
		j.m.Store(key, n)
	}
	return nil
}

func (j *memJoins) Ingested(_ context.Context, key string) (bool, int, error) {
	v, ok := j.m.Load(key)
	if !ok {
		return false, 0, nil
	}
	return true, v.(int), nil
}

// joinKey names layer digest of image img in wish: hashed, since a KV key allows few
// characters.
func joinKey(wish string, img events.Image, digest string) string {
	h := sha256.Sum256([]byte(wish + "\x00" + img.Digest + "\x00" + img.ConfigDigest + "\x00" + digest))
	return hex.EncodeToString(h[:16])
}

func (s *Service) joins() Joins {
	s.joinsOnce.Do(func() {
		if s.Joins == nil {
			s.Joins = &memJoins{}
		}
	})
	return s.Joins
}

// missing are the image's layers not in the store, by index.
func missing(st *store.Store, desc *events.Description) []int {
	var out []int
	for i, l := range desc.Layers {
		if !st.HasLayer(l.Digest) {
			out = append(out, i)
		}
	}
	return out
}

// await handles a layer.ingested of an image some of whose layers (gone, by index) are not
// in the store: it records in's layer as ingested and requests again those of the missing
// that were ingested too. It returns nil to wait for the next layer.ingested.
func (s *Service) await(ctx context.Context, in events.LayerIngested, desc *events.Description, gone []int) error {
	j := s.joins()
	if err := j.Seen(ctx, joinKey(in.Job.WishID, in.Image, in.Layer.Digest), in.Again); err != nil {
		return err
	}
	for _, i := range gone {
		l := desc.Layers[i]
		seen, again := l.Digest == in.Layer.Digest, 0
		if seen {
			again = in.Again
		}
		if had, n, err := j.Ingested(ctx, joinKey(in.Job.WishID, in.Image, l.Digest)); err != nil {
			return err
		} else if had {
			seen, again = true, max(again, n)
		}
		if !seen {
			continue // not ingested yet: its layer.ingested will come
		}
		if again >= events.MaxAgain {
			return events.Permanent(fmt.Errorf("layer %s (index %d) of %s was ingested and then went missing from the store %d times "+
				"(removed by hand, by a garbage collection without --nats, or lost by the disk); not requesting it again: "+
				"check the store's disk and what removes layers, then convert the image again", l.Digest, i, in.Job.Image, again+1))
		}
		if err := s.requestAgain(ctx, in, i, l, again+1); err != nil {
			return err
		}
	}
	return nil
}

// requestAgain asks the ingesters for layer l (index i) of in's image once more.
func (s *Service) requestAgain(ctx context.Context, in events.LayerIngested, i int, l events.Layer, again int) error {
	s.Log.Warn("a layer reported ingested is missing from the store: requesting it again", "wish", in.Job.WishID, "image", in.Job.Image,
		"layer", l.Digest, "again", again)
	out := events.LayerRequested{Job: in.Job, Image: in.Image, Index: i, Layer: l, Again: again}
	env, err := events.New(events.LayerRequestedType, source, events.ID(events.LayerRequestedType, in.Job.WishID, in.Image.Digest, l.Digest, strconv.Itoa(i),
		"again", strconv.Itoa(again)), in.Job, in.Job.Image, out)
	if err != nil {
		return err
	}
	return s.Bus.Publish(ctx, env)
}
