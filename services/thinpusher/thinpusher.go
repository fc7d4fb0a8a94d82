package thinpusher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/thin"
)

// Name is the service's name: its durable consumer and its CloudEvents source.
const Name = "thinpusher"

const source = "flatbed/" + Name

// Service pushes thin images.
type Service struct {
	Bus         events.Publisher
	Log         *slog.Logger
	Registry    []registry.Option
	MaxAttempts int
	// Descriptions holds what each image is made of (its layers and config).
	Descriptions events.Descriptions
	Metrics      *Metrics
}

// Register adds the thin pusher's consumer to b.
func (s *Service) Register(ctx context.Context, b *bus.Bus) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(prometheus.DefaultRegisterer)
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: events.Consumers()[Name], Concurrency: 2, MaxAttempts: s.MaxAttempts}, s.Handle)
}

// Handle pushes the thin image of one flattened image (or records that it was skipped).
func (s *Service) Handle(ctx context.Context, d *bus.Delivery) error {
	if d.Type == events.ImageResolvedType {
		return s.handleResolved(ctx, d) // an image already in the store (resolved.go)
	}
	var in events.ImageFlattened
	if err := d.Decode(&in); err != nil {
		return err
	}
	start := time.Now()
	out := events.ThinPushed{Job: in.Job, Image: in.Image, FlatPath: in.FlatPath, PublicPath: in.PublicPath, ThinImage: in.Job.ThinImage}
	result := resultSkipped
	if !in.Job.PushesThin() {
		out.Skipped = true
	} else {
		digest, pushed, err := s.push(ctx, in)
		if err != nil {
			s.Metrics.failed(err, d.LastAttempt())
			return err // the bus reports a permanent error at once, others after the last attempt
		}
		out.ThinDigest, result = digest, pushedOrPresent(pushed)
	}
	out.Seconds = time.Since(start).Seconds()
	return s.publish(ctx, out, result)
}

// publish publishes the thin.pushed of one image and counts its result.
func (s *Service) publish(ctx context.Context, out events.ThinPushed, result string) error {
	env, err := events.New(events.ThinPushedType, source, events.ID(events.ThinPushedType, out.Job.WishID, out.Image.Digest), out.Job, out.Job.Image, out)
	if err != nil {
		return err
	}
	if err := s.Bus.Publish(ctx, env); err != nil {
		return err
	}
	s.Metrics.count(result)
	if result != resultSkipped && s.Metrics != nil {
		s.Metrics.Seconds.Observe(out.Seconds)
	}
	return nil
}

func pushedOrPresent(pushed bool) string {
	if pushed {
		return resultPushed
	}
	return resultPresent
}

// push builds and pushes the thin image. Registry faults are retried within the call, up to
// the registry timeout; what no new attempt can mend (a bad name, no description, refused
// credentials, the registry's last word) is returned as events.Permanent.
func (s *Service) push(ctx context.Context, in events.ImageFlattened) (string, bool, error) {
	if len(in.Platforms) > 0 {
		return s.pushList(ctx, in.Job, platformsOf(in), false) // a multi-arch image (list.go)
	}
	img, out, dst, err := s.thinImage(ctx, in.Job, in.Image)
	if err != nil {
		return "", false, err
	}
	return s.write(ctx, in.Job, img, out, dst, false)
}

// write pushes img to dst, or, with ifMissing, only when dst does not already name an image
// with img's digest (see held), and returns that digest and whether it pushed.
func (s *Service) write(ctx context.Context, job events.Job, img v1.Image, out imageref.Ref, dst name.Reference, ifMissing bool) (string, bool, error) {
	opts := append([]registry.Option{registry.WithDUCCAuth(dst.Context().RegistryStr(), job.User)}, s.Registry...)
	ctx = registry.ContextWithScheme(ctx, out.Scheme, out.Registry) // never https for an http:// name, nor the reverse
	if ifMissing {
		if digest, ok := s.held(ctx, opts, img, dst); ok {
			s.Log.Info("thin image already in place", "wish", job.WishID, "image", job.Image, "thin", job.ThinImage, "digest", digest)
			return digest, false, nil
		}
	}
	var digest string
	err := registry.Do(ctx, opts, func(ro []remote.Option) error {
		d, err := thin.Push(ctx, img, dst, ro)
		digest = d
		return err
	})
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		return "", false, err // shutting down: handed back
	case registry.Denied(err):
		return "", false, events.Permanent(fmt.Errorf("the registry refused to take the thin image %s; check the credentials for %s (the wishlist's user with DUCC_OUTPUT_REGISTRY_PASS, or the docker config): %w",
			job.ThinImage, dst.Context().RegistryStr(), registry.Explain(err)))
	case registry.Final(err):
		return "", false, events.Permanent(fmt.Errorf("pushing the thin image %s: %w", job.ThinImage, registry.Explain(err)))
	default:
		return "", false, fmt.Errorf("pushing the thin image %s: %w", job.ThinImage, registry.Explain(err))
	}
	s.Log.Info("thin image pushed", "wish", job.WishID, "image", job.Image, "thin", job.ThinImage, "digest", digest)
	return digest, true, nil
}

// thinImage builds the thin image of image for job (thin images are deterministic: the same
// image and job give the same digest) and reads the name it goes to.
func (s *Service) thinImage(ctx context.Context, job events.Job, image events.Image) (v1.Image, imageref.Ref, name.Reference, error) {
	out, dst, err := outputRef(job.ThinImage)
	if err != nil {
		return nil, out, nil, events.Permanent(fmt.Errorf("cannot push the thin image: %w", err))
	}
	desc, err := s.Descriptions.Get(ctx, image)
	if err != nil {
		if errors.Is(err, events.ErrNoDescription) {
			return nil, out, nil, events.Permanent(fmt.Errorf("cannot push the thin image: %w", err))
		}
		return nil, out, nil, err
	}
	var digests []string
	for _, l := range desc.Layers {
		digests = append(digests, l.Digest)
	}
	origin := job.Image
	if r, err := imageref.Parse(origin); err == nil {
		origin = r.String() // DUCC's origin is the whole name with scheme
	}
	m := thin.New(origin, job.CvmfsRepo, digests)
	cfg := &v1.ConfigFile{Config: v1.Config{Env: desc.Config.Env, Cmd: desc.Config.Cmd}}
	img, err := thin.Image(m, cfg)
	if err != nil {
		return nil, out, nil, fmt.Errorf("building the thin image of %s: %w", job.Image, err)
	}
	return img, out, dst, nil
}

// outputRef reads a thin image name in DUCC syntax (scheme decides http or https).
func outputRef(s string) (imageref.Ref, name.Reference, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	r, err := imageref.Parse(s)
	if err != nil {
		return r, nil, fmt.Errorf("thin image name %q (from output_format): %w", s, err)
	}
	ref, err := r.GGCR()
	return r, ref, err
}
