package relocator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/relocate"
)

// Name is the service's name: its durable consumer and its CloudEvents source.
const Name = "relocator"

const source = "flatbed/" + Name

// Service relocates the images of the wishes that ask for the relocated output.
type Service struct {
	Bus      events.Publisher
	Log      *slog.Logger
	Registry []registry.Option
	// MaxAttempts is how often an image is delivered before the wish is declared failed
	// (--max-attempts; 0 = the bus default). Registry faults are retried within a delivery.
	MaxAttempts int
	Metrics     *Metrics
}

// Register adds the relocator's consumer to b.
func (s *Service) Register(ctx context.Context, b *bus.Bus) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(prometheus.DefaultRegisterer)
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: events.Consumers()[Name], Concurrency: 2, MaxAttempts: s.MaxAttempts}, s.Handle)
}

// Handle relocates one resolved image when its wish asks for it. Registry faults are retried
// within the call, up to the registry timeout; a digest the target changes, a name that
// cannot be relocated and the registry's last word fail the wish at once (events.Permanent).
func (s *Service) Handle(ctx context.Context, d *bus.Delivery) error {
	var in events.ImageResolved
	if err := d.Decode(&in); err != nil {
		return err
	}
	job := in.Job
	if !job.Wants(events.OutputRelocated) {
		return nil
	}
	src, dst, err := plan(job, in.Image)
	if err != nil {
		s.count("failed")
		return events.Permanent(err)
	}
	start := time.Now()
	// Each registry only over the scheme its name gives: never https for an http:// one.
	ctx = registry.ContextWithScheme(registry.ContextWithScheme(ctx, src.Scheme, src.Registry), dst.Scheme, dst.Registry)
	var copied v1.Hash
	err = registry.Do(ctx, s.Registry, func(ro []remote.Option) error {
		h, err := relocate.Copy(ctx, src, dst, relocate.WithRemote(ro...))
		copied = h
		return err
	})
	if err != nil {
		return s.failure(job, src, dst, err)
	}
	took := time.Since(start)
	target := dst
	target.Digest = copied.String()
	out := events.ImageRelocated{Job: job, Image: in.Image, Target: target.Registry + "/" + target.Repository + target.Reference(), Seconds: took.Seconds()}
	env, err := events.New(events.ImageRelocatedType, source, events.ID(events.ImageRelocatedType, job.WishID, in.Image.Digest), job, job.Image, out)
	if err != nil {
		return err
	}
	if err := s.Bus.Publish(ctx, env); err != nil {
		return err
	}
	s.count("relocated")
	if s.Metrics != nil {
		s.Metrics.Seconds.Observe(took.Seconds())
	}
	s.Log.Info("relocated", "wish", job.WishID, "image", job.Image, "target", out.Target, "seconds", took.Seconds())
	return nil
}

// plan names what to copy and where. The source is the image as wished, pinned: to the
// digest the wish names, else to the one the resolver read, so that a tag moved meanwhile
// cannot change what is relocated. The target is duffle's name for the image under the
// wish's prefix (Prefix.Flat, or Prefix.Nested with RelocateNoFlatten), tag and digest kept.
func plan(job events.Job, img events.Image) (src, dst imageref.Ref, err error) {
	prefix, err := relocate.ParsePrefix(job.RelocatePrefix)
	if err != nil {
		return src, dst, err
	}
	wished, err := relocate.ParseImage(job.Image)
	if err != nil {
		return src, dst, fmt.Errorf("relocating %s: %w", job.Image, err)
	}
	name := prefix.Flat
	if job.RelocateNoFlatten {
		name = prefix.Nested
	}
	if dst, err = name(wished); err != nil {
		return src, dst, err
	}
	src = wished
	if src.Digest == "" {
		src.Digest = pin(img)
	}
	return src, dst, nil
}

// pin is the digest a wish by tag is relocated at: what the tag named when the resolver
// read it. A tag that named an index is relocated as that index, every platform, as duffle
// users expect; the resolver's image is then one of its manifests.
func pin(img events.Image) string {
	if img.IndexDigest != "" {
		return img.IndexDigest
	}
	return img.Digest
}

// failure decides what a failed copy means for the wish: a changed digest, a name the
// registry refuses, credentials it refuses and its other last words fail it at once; what
// may still mend (a full disk, a registry that gave no final answer) is tried again.
func (s *Service) failure(job events.Job, src, dst imageref.Ref, err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return err // shutting down: handed back
	case errors.Is(err, relocate.ErrDigestChanged):
		s.count("digest_changed")
		return events.Permanent(err) // names the image, the target and both digests
	case registry.Denied(err):
		s.count("failed")
		return events.Permanent(fmt.Errorf("relocating %s to %s: the registry refused the credentials; check them for %s and %s (DUCC_AUTH_REGISTRIES or docker login): %w",
			job.Image, dst.Registry+"/"+dst.Repository, src.Registry, dst.Registry, registry.Explain(err)))
	case registry.Final(err):
		s.count("failed")
		return events.Permanent(fmt.Errorf("relocating %s: %w", job.Image, registry.Explain(err)))
	}
	return fmt.Errorf("relocating %s: %w", job.Image, registry.Explain(err))
}

func (s *Service) count(result string) {
	if s.Metrics != nil {
		s.Metrics.Images.WithLabelValues(result).Inc()
	}
}
