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
}

// Register adds the thin pusher's consumer to b.
func (s *Service) Register(ctx context.Context, b *bus.Bus) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: events.Consumers()[Name], Concurrency: 2, MaxAttempts: s.MaxAttempts}, s.Handle)
}

// Handle pushes the thin image of one flattened image (or records that it was skipped).
func (s *Service) Handle(ctx context.Context, d *bus.Delivery) error {
	var in events.ImageFlattened
	if err := d.Decode(&in); err != nil {
		return err
	}
	start := time.Now()
	out := events.ThinPushed{Job: in.Job, Image: in.Image, FlatPath: in.FlatPath, PublicPath: in.PublicPath, ThinImage: in.Job.ThinImage}
	if in.Job.SkipThin || in.Job.ThinImage == "" || !in.Job.Wants(events.OutputThin) {
		out.Skipped = true
	} else {
		digest, err := s.push(ctx, in)
		if err != nil {
			return err // the bus reports a permanent error at once, others after the last attempt
		}
		out.ThinDigest = digest
	}
	out.Seconds = time.Since(start).Seconds()
	env, err := events.New(events.ThinPushedType, source, events.ID(events.ThinPushedType, in.Job.WishID, in.Image.Digest), in.Job, in.Job.Image, out)
	if err != nil {
		return err
	}
	return s.Bus.Publish(ctx, env)
}

// push builds and pushes the thin image. Registry faults are retried within the call, up to
// the registry timeout; what no new attempt can mend (a bad name, no description, refused
// credentials, the registry's last word) is returned as events.Permanent.
func (s *Service) push(ctx context.Context, in events.ImageFlattened) (string, error) {
	out, dst, err := outputRef(in.Job.ThinImage)
	if err != nil {
		return "", events.Permanent(fmt.Errorf("cannot push the thin image: %w", err))
	}
	desc, err := s.Descriptions.Get(ctx, in.Image)
	if err != nil {
		if errors.Is(err, events.ErrNoDescription) {
			return "", events.Permanent(fmt.Errorf("cannot push the thin image: %w", err))
		}
		return "", err
	}
	var digests []string
	for _, l := range desc.Layers {
		digests = append(digests, l.Digest)
	}
	origin := in.Job.Image
	if r, err := imageref.Parse(origin); err == nil {
		origin = r.String() // DUCC's origin is the whole name with scheme
	}
	m := thin.New(origin, in.Job.CvmfsRepo, digests)
	cfg := &v1.ConfigFile{Config: v1.Config{Env: desc.Config.Env, Cmd: desc.Config.Cmd}}
	img, err := thin.Image(m, cfg)
	if err != nil {
		return "", fmt.Errorf("building the thin image of %s: %w", in.Job.Image, err)
	}
	opts := append([]registry.Option{registry.WithDUCCAuth(dst.Context().RegistryStr(), in.Job.User)}, s.Registry...)
	ctx = registry.ContextWithScheme(ctx, out.Scheme, out.Registry) // never https for an http:// name, nor the reverse
	var digest string
	err = registry.Do(ctx, opts, func(ro []remote.Option) error {
		d, err := thin.Push(ctx, img, dst, ro)
		digest = d
		return err
	})
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		return "", err // shutting down: handed back
	case registry.Denied(err):
		return "", events.Permanent(fmt.Errorf("the registry refused to take the thin image %s; check the credentials for %s (the wishlist's user with DUCC_OUTPUT_REGISTRY_PASS, or the docker config): %w",
			in.Job.ThinImage, dst.Context().RegistryStr(), registry.Explain(err)))
	case registry.Final(err):
		return "", events.Permanent(fmt.Errorf("pushing the thin image %s: %w", in.Job.ThinImage, registry.Explain(err)))
	default:
		return "", fmt.Errorf("pushing the thin image %s: %w", in.Job.ThinImage, registry.Explain(err))
	}
	s.Log.Info("thin image pushed", "wish", in.Job.WishID, "image", in.Job.Image, "thin", in.Job.ThinImage, "digest", digest)
	return digest, nil
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
