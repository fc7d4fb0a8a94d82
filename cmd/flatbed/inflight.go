package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// inFlight returns what the conversions into repo in flight on b need, for garbage
// collection (lifecycle.CollectOptions.InFlight): the layers and config of every image named
// by a layer.requested or layer.ingested event in the pipeline stream, its layers read from
// the description the resolver stored. An image is in the stream from its resolution until
// its flat tree is recorded: the resolver publishes its layer.requested events before it
// acknowledges the wish, an ingester publishes layer.ingested before it acknowledges
// layer.requested, the flattener acknowledges an image's last layer.ingested once the image
// is recorded, and the janitor (bus.Sweep) never purges an event a consumer has not
// acknowledged. Events already handled are counted too until they are swept: that keeps a
// little more, never less; so are those of images recorded meanwhile, which the recorded
// images name anyway.
func inFlight(b *bus.Bus, repo string) func(ctx context.Context) (layers, configs []string, err error) {
	// Asked again before each removal, it reads only what was published since it last
	// looked: what it found stays counted (a superset is safe), so a collection of many
	// paths reads the stream about once.
	var (
		mu        sync.Mutex
		next      uint64 = 1                         // first stream sequence not read yet
		images           = map[string]events.Image{} // manifest digest + config digest -> image
		layerSet         = map[string]bool{}
		described        = map[string]bool{}
	)
	return func(ctx context.Context) ([]string, []string, error) {
		mu.Lock()
		defer mu.Unlock()
		js := b.JetStream()
		stream, err := js.Stream(ctx, events.Stream)
		if err != nil {
			return nil, nil, fmt.Errorf("opening stream %s: %w", events.Stream, err)
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("reading stream %s: %w", events.Stream, err)
		}
		last := info.State.LastSeq // everything published before now
		if info.State.Msgs > 0 && last >= next {
			if err := readLayerEvents(ctx, stream, next, last, repo, images, layerSet); err != nil {
				return nil, nil, err
			}
		}
		next = max(next, last+1)
		var descs *bus.Descriptions
		for key, img := range images {
			if described[key] {
				continue
			}
			if descs == nil {
				if descs, err = b.Descriptions(ctx); err != nil {
					return nil, nil, err
				}
			}
			d, err := descs.Get(ctx, img)
			if err != nil && !errors.Is(err, events.ErrNoDescription) {
				return nil, nil, fmt.Errorf("reading the description of %s: %w", img.Name, err)
			}
			if err == nil { // without one, a conversion that cannot go on: its events' layers are counted
				for _, l := range d.Layers {
					layerSet[l.Digest] = true
				}
			}
			described[key] = true
		}
		layers := make([]string, 0, len(layerSet))
		for l := range layerSet {
			layers = append(layers, l)
		}
		configs := make([]string, 0, len(images))
		for _, img := range images {
			configs = append(configs, img.ConfigDigest)
		}
		return layers, configs, nil
	}
}

// readLayerEvents adds the images and layers of the layer events for repo in stream from
// sequence first to last to images and layers.
func readLayerEvents(ctx context.Context, stream jetstream.Stream, first, last uint64, repo string, images map[string]events.Image, layers map[string]bool) error {
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.Subject(events.LayerRequestedType), events.Subject(events.LayerIngestedType)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    first,
	})
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", events.Stream, err)
	}
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return fmt.Errorf("reading stream %s: %w", events.Stream, err)
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			if meta.NumPending == 0 || meta.Sequence.Stream >= last {
				done = true
			}
			img, layer, ok := layerEvent(m, repo)
			if ok {
				layers[layer] = true
				images[img.Digest+" "+img.ConfigDigest] = img
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("reading stream %s: %w", events.Stream, err)
		}
		if done || n == 0 {
			return nil
		}
	}
}

// layerEvent reads the image and layer of a layer.requested or layer.ingested event for a
// conversion into repo; ok is false for another repository's, or an event that does not
// pass its checks (its conversion fails without using the store).
func layerEvent(m jetstream.Msg, repo string) (events.Image, string, bool) {
	ev, err := events.Parse(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	if err != nil {
		return events.Image{}, "", false
	}
	v, err := events.Check(events.ShortType(ev), ev.Data())
	if err != nil {
		return events.Image{}, "", false
	}
	switch e := v.(type) {
	case *events.LayerRequested:
		if e.Job.CvmfsRepo == repo {
			return e.Image, e.Layer.Digest, true
		}
	case *events.LayerIngested:
		if e.Job.CvmfsRepo == repo {
			return e.Image, e.Layer.Digest, true
		}
	}
	return events.Image{}, "", false
}
