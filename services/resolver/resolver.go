package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/store"
)

// Name is the service's name: its durable consumer and its CloudEvents source.
const Name = "resolver"

// Service resolves wishes.
type Service struct {
	StoreRoot string // the directory holding one directory per CVMFS repository
	Bus       events.Publisher
	Log       *slog.Logger
	Registry  []registry.Option // read at the first wish: one registry.Client serves them all
	// MaxAttempts is how often a wish is delivered before it is declared failed
	// (--max-attempts; 0 = the bus default). Registry faults are not counted: they are
	// retried within one delivery, up to the registry timeout (see package registry).
	MaxAttempts int
	// MaxLayers refuses images with more layers (--max-layers; 0 = DefaultMaxLayers).
	MaxLayers int
	// Descriptions stores what was read of each image for the later stages.
	Descriptions events.Descriptions
	Metrics      *Metrics
	// TrustStore (--trust-store) takes an image the store holds for whole once the stat
	// checks pass, without walking its layers and flat tree against their recorded tallies
	// (sound.go): for stores too big to walk at every run.
	TrustStore bool
	// Locks, when set, are the leases the ingester and flattener take: held while a layer or
	// flat tree found damaged is removed, so nothing a writer has just made again is.
	Locks events.Locker
	// CVMFS, when set and it gives a publisher for a wish's repository (--store-backend),
	// removes what drifted there inside a cvmfs_server transaction.
	CVMFS func(cvmfsRepo string) *cvmfs.Publisher

	clientOnce sync.Once
	client     *registry.Client
	checks     checks             // what each run has walked (sound.go)
	removeAll  func(string) error // store.RemoveAll; tests refuse it as a read-only mount would
}

// DefaultMaxLayers bounds the layers of an image: docker runs at most 127, and every layer
// costs events, a store directory and a pass of the flattener.
const DefaultMaxLayers = 1000

// Register adds the resolver's consumer to b.
func (s *Service) Register(ctx context.Context, b *bus.Bus) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.MaxLayers <= 0 {
		s.MaxLayers = DefaultMaxLayers
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(prometheus.DefaultRegisterer)
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: events.Consumers()[Name], Concurrency: 4, MaxAttempts: s.MaxAttempts}, s.Handle)
}

// Handle resolves one wish.
func (s *Service) Handle(ctx context.Context, d *bus.Delivery) (err error) {
	defer func() { s.Metrics.failed(err, d.LastAttempt()) }()
	var in events.WishSubmitted
	if err := d.Decode(&in); err != nil {
		return err
	}
	job := in.Job
	log := s.Log.With("wish", job.WishID, "image", job.Image)
	ref, err := imageref.Parse(job.Image)
	if err == nil && ref.Wildcard() {
		err = fmt.Errorf("image %s: a wish names one tag, and %q is a wildcard; expand it first (flatbed convert, loop and expand-wildcard do), then wish each tag it matches", job.Image, ref.Tag)
	}
	if err != nil {
		return events.Permanent(err)
	}
	ctx = registry.ContextWithScheme(ctx, ref.Scheme, ref.Registry) // never https for an http:// image, nor the reverse
	maxLayers := s.MaxLayers
	if maxLayers <= 0 {
		maxLayers = DefaultMaxLayers
	}
	maxLayers = min(maxLayers, events.MaxLayers) // what an event may name
	// Only the unpacked output needs layers, a config and the store; the other outputs
	// (relocated) start from image.resolved alone.
	unpack := job.Wants(events.OutputUnpacked)
	var st *store.Store
	if unpack {
		if st, err = store.Open(s.StoreRoot, job.CvmfsRepo); err != nil {
			return events.Permanent(err)
		}
	}
	// Registry faults are retried inside Do, up to the registry timeout; what it returns is
	// final (or the process stopping).
	var res *resolution
	var done bool
	err = s.registry().Do(ctx, func(ro []remote.Option) error {
		if unpack && !job.ConvertAgain {
			// One HEAD, and no GET while the image is the one the store holds.
			r, same, err := unchanged(st, ref, ro, job.MultiArch)
			if err != nil {
				return err
			}
			if same {
				// And whole, as far as its recorded tallies tell: else it is fetched and mended.
				if ok, err := s.sound(ctx, st, job, r, log); err != nil || ok {
					res, done = r, true
					return err
				}
			}
		}
		r, err := fetch(ref, ro, maxLayers, job.MultiArch)
		if err != nil {
			return err
		}
		// "Already converted" is the unpacked output's shortcut: a relocation is done anyway.
		res, done = r, unpack && !job.ConvertAgain && converted(st, r)
		if done {
			if done, err = s.sound(ctx, st, job, r, log); err != nil || done {
				return err
			}
		}
		if done || !unpack {
			return nil
		}
		for i, d := range r.Descs {
			if err := withConfig(ref, r.Images[i], d); err != nil {
				if r.Multi {
					err = fmt.Errorf("platform %s: %w", d.Image.Platform, err)
				}
				return err
			}
		}
		return nil
	})
	if err != nil {
		var mending storeError
		if errors.Is(err, context.Canceled) || errors.As(err, &mending) {
			return err // shutting down, or the store could not be mended now: the wish is handed back
		}
		return events.Permanent(err)
	}
	img := res.Descs[res.Primary].Image
	var platforms []events.Image
	if res.Multi {
		for _, d := range res.Descs {
			platforms = append(platforms, d.Image)
		}
	}
	if unpack && !done {
		// Stored before any event names it: every later stage reads it from there.
		for _, d := range res.Descs {
			if err := s.Descriptions.Put(ctx, d); err != nil {
				return err
			}
		}
		if res.Multi {
			idx, ok := s.Descriptions.(events.Indexes)
			if !ok {
				return events.Permanent(fmt.Errorf("image %s: the description store cannot keep an index, which -m/--multi-arch needs", job.Image))
			}
			if err := idx.PutIndex(ctx, img.IndexDigest, res.Index); err != nil {
				return err
			}
		}
	}
	if done && job.PushesThin() {
		// The thin pusher checks the thin image of an image already converted (thin.go).
		for _, d := range res.Descs {
			if err := s.keepDescription(ctx, st, ref, d.Image, d.Manifest); err != nil {
				return err
			}
		}
	}
	env, err := events.New(events.ImageResolvedType, source, events.ID(events.ImageResolvedType, job.WishID, img.Digest), job, job.Image,
		events.ImageResolved{Job: job, Image: img, AlreadyConverted: done, Platforms: platforms})
	if err != nil {
		return err
	}
	if err := s.Bus.Publish(ctx, env); err != nil {
		return err
	}
	s.Metrics.resolved(res, done)
	if done {
		log.Info("already converted", "config", img.ConfigDigest, "platforms", len(platforms))
		return nil
	}
	if len(res.Skipped) > 0 {
		log.Info("the tag names an index: converting this host's platform only (-m/--multi-arch converts every one)",
			"platform", img.Platform, "skipped", strings.Join(res.Skipped, ", "))
	}
	log.Info("resolved", "digest", img.Digest, "config", img.ConfigDigest, "layers", img.LayerCount, "platforms", len(platforms), "outputs", job.Outputs)
	if !unpack {
		return nil // no layer is wanted
	}
	for _, desc := range res.Descs {
		img := desc.Image
		for i, l := range desc.Layers {
			env, err := events.New(events.LayerRequestedType, source, events.ID(events.LayerRequestedType, job.WishID, img.Digest, l.Digest, fmt.Sprint(i)), job, job.Image,
				events.LayerRequested{Job: job, Image: img, Index: i, Layer: l})
			if err != nil {
				return err
			}
			if err := s.Bus.Publish(ctx, env); err != nil {
				return err
			}
		}
	}
	return nil
}

const source = "flatbed/" + Name

// registry is what every wish's registry operations go through, made from s.Registry on first
// use: each registry is pinged, and each repository's token fetched, once per process.
func (s *Service) registry() *registry.Client {
	s.clientOnce.Do(func() { s.client = registry.NewClient(s.Registry...) })
	return s.client
}

// converted says the store already holds this image under its name: the recorded manifest
// names the same config, and the flat tree and the public path exist; for a multi-arch image
// (-m), the recorded index is the one read and every chosen platform is in place. The store,
// not the bus, is the source of truth.
func converted(st *store.Store, r *resolution) bool {
	if r.Multi {
		return convertedMulti(st, r)
	}
	img := &r.Descs[0].Image
	cfg, err := store.ReadManifestConfig(st.ManifestPath(img.Name))
	if err != nil || cfg != img.ConfigDigest {
		return false
	}
	return published(st, img)
}

// published says the flat tree of img's config, every layer its stored manifest lists and its
// public path exist, the public path leading to the flat tree (intact.go).
func published(st *store.Store, img *events.Image) bool {
	if !st.HasFlat(img.ConfigDigest) || !intact(st, img) {
		return false
	}
	_, err := os.Lstat(st.PublicPath(img.Name))
	return err == nil
}
