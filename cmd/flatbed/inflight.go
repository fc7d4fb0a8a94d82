package main

import (
	"context"
	"errors"
	"fmt"

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
// little more, never less.
func inFlight(b *bus.Bus, repo string) func(ctx context.Context) (layers, configs []string, err error) {
	return func(ctx context.Context) (layers, configs []string, err error) {
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
		if info.State.Msgs == 0 {
			return nil, nil, nil
		}
		cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{events.Subject(events.LayerRequestedType), events.Subject(events.LayerIngestedType)},
		})
		if err != nil {
			return nil, nil, fmt.Errorf("reading stream %s: %w", events.Stream, err)
		}
		images := map[string]events.Image{} // manifest digest + config digest -> image
		for done := false; !done; {
			batch, err := cons.FetchNoWait(256)
			if err != nil {
				return nil, nil, fmt.Errorf("reading stream %s: %w", events.Stream, err)
			}
			n := 0
			for m := range batch.Messages() {
				n++
				meta, err := m.Metadata()
				if err != nil {
					return nil, nil, err
				}
				if meta.NumPending == 0 || meta.Sequence.Stream >= last {
					done = true
				}
				img, layer, ok := layerEvent(m, repo)
				if !ok {
					continue
				}
				layers = append(layers, layer)
				images[img.Digest+" "+img.ConfigDigest] = img
			}
			if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
				return nil, nil, fmt.Errorf("reading stream %s: %w", events.Stream, err)
			}
			if n == 0 {
				break // nothing left that matches
			}
		}
		if len(images) == 0 {
			return layers, nil, nil
		}
		descs, err := b.Descriptions(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, img := range images {
			configs = append(configs, img.ConfigDigest)
			d, err := descs.Get(ctx, img)
			if errors.Is(err, events.ErrNoDescription) {
				continue // a conversion that cannot go on: its event's own layer is counted
			}
			if err != nil {
				return nil, nil, fmt.Errorf("reading the description of %s: %w", img.Name, err)
			}
			for _, l := range d.Layers {
				layers = append(layers, l.Digest)
			}
		}
		return layers, configs, nil
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
