package thinpusher

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/events"
	"flatbed.dev/pkg/multiarch"
	"flatbed.dev/pkg/registry"
)

// The thin image of a multi-arch image (-m) is a manifest list of per-platform thin images,
// as the source is an index of per-platform images: each platform's thin image (its own
// thin.json, its config's Env and Cmd, its os/architecture/variant) is pushed by digest,
// then the list under the thin name, each entry naming its platform. A client pulls the thin
// image of its own platform, as it would pull the source.

// platformsOf lists the platforms of a multi-arch image.flattened.
func platformsOf(in events.ImageFlattened) []events.Image {
	out := make([]events.Image, len(in.Platforms))
	for i, p := range in.Platforms {
		out[i] = p.Image
	}
	return out
}

// pushList pushes the thin manifest list of the platforms of one image and returns its digest
// and whether anything was pushed. With ifMissing, a platform's thin image, or the list, the
// target already holds is not pushed again (see write).
func (s *Service) pushList(ctx context.Context, job events.Job, platforms []events.Image, ifMissing bool) (string, bool, error) {
	list := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	anyPushed := false
	for _, p := range platforms {
		img, out, ref, err := s.thinImage(ctx, job, p)
		if err != nil {
			return "", false, err
		}
		plat, err := multiarch.Parse(p.Platform)
		if err != nil {
			return "", false, events.Permanent(fmt.Errorf("the thin image of %s: %w", p.Name, err))
		}
		if img, err = onPlatform(img, plat); err != nil {
			return "", false, fmt.Errorf("building the %s thin image of %s: %w", p.Platform, job.Image, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return "", false, err
		}
		_, pushed, err := s.write(ctx, job, img, out, ref.Context().Digest(digest.String()), ifMissing)
		if err != nil {
			return "", false, fmt.Errorf("platform %s: %w", p.Platform, err)
		}
		anyPushed = anyPushed || pushed
		list = mutate.AppendManifests(list, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &plat}})
	}
	out, ref, err := outputRef(job.ThinImage)
	if err != nil {
		return "", false, events.Permanent(fmt.Errorf("cannot push the thin image: %w", err))
	}
	digest, err := list.Digest()
	if err != nil {
		return "", false, err
	}
	opts := append([]registry.Option{registry.WithDUCCAuth(ref.Context().RegistryStr(), job.User)}, s.Registry...)
	ctx = registry.ContextWithScheme(ctx, out.Scheme, out.Registry)
	present := false
	err = registry.Do(ctx, opts, func(ro []remote.Option) error {
		if ifMissing {
			if d, err := remote.Head(ref, ro...); err == nil && d.Digest == digest {
				present = true
				return nil
			}
		}
		// Every platform's thin image is there: the list's manifest is all that is left.
		return remote.Put(ref, list, append(ro, remote.WithContext(ctx))...)
	})
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled):
		return "", false, err
	case registry.Denied(err), registry.Final(err):
		return "", false, events.Permanent(fmt.Errorf("pushing the thin manifest list %s: %w", job.ThinImage, registry.Explain(err)))
	default:
		return "", false, fmt.Errorf("pushing the thin manifest list %s: %w", job.ThinImage, registry.Explain(err))
	}
	if s.Metrics != nil {
		s.Metrics.Lists.WithLabelValues(pushedOrPresent(!present)).Inc()
	}
	if present {
		s.Log.Info("thin manifest list already in place", "wish", job.WishID, "image", job.Image, "thin", job.ThinImage, "digest", digest.String())
		return digest.String(), anyPushed, nil
	}
	s.Log.Info("thin manifest list pushed", "wish", job.WishID, "image", job.Image, "thin", job.ThinImage, "platforms", len(platforms), "digest", digest.String())
	return digest.String(), true, nil
}

// onPlatform gives a thin image the platform of the image it stands for.
func onPlatform(img v1.Image, p v1.Platform) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	return mutate.ConfigFile(img, cf)
}
