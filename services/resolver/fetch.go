package resolver

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
)

// DefaultPlatform is what an index resolves to until multi-arch conversion exists (DUCC too
// converts amd64 by default).
var DefaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// fetch reads the manifest (picking linux/amd64 from an index). No blob is read here: the
// config is read by withConfig, only when the image needs converting.
func fetch(ctx context.Context, ref imageref.Ref, ropts []registry.Option) (*events.Image, v1.Image, error) {
	gref, err := ref.GGCR()
	if err != nil {
		return nil, nil, err
	}
	opts := append(registry.Options(ctx, ropts...), remote.WithPlatform(DefaultPlatform))
	// One GET: every digest published below comes from these bytes, so a tag that moves
	// while we read cannot mix two images (the config and an index's child are read by
	// digest, and go-containerregistry checks those digests).
	desc, err := remote.Get(gref, opts...)
	if err != nil {
		if registry.NotFound(err) {
			what := "tag " + ref.Tag
			if ref.Tag == "" {
				what = "digest " + ref.Digest
			}
			return nil, nil, fmt.Errorf("image %s not found: %s has no %s in repository %s; check the name and tag (%w)",
				ref, ref.Registry, what, ref.Repository, registry.Explain(err))
		}
		if registry.Denied(err) {
			return nil, nil, fmt.Errorf("the registry %s refused access to %s; check the credentials for it (DUCC_AUTH_REGISTRIES or docker login) (%w)",
				ref.Registry, ref, registry.Explain(err))
		}
		return nil, nil, fmt.Errorf("fetching the manifest of %s: %w", ref, registry.Explain(err))
	}
	var img v1.Image
	platform := ""
	if desc.MediaType.IsIndex() {
		// remote.Get with WithPlatform already checks the index; Image() picks the platform.
		img, err = desc.Image()
		if err != nil {
			return nil, nil, fmt.Errorf("image %s is an index without a %s/%s image: %w", ref, DefaultPlatform.OS, DefaultPlatform.Architecture, err)
		}
		platform = DefaultPlatform.String()
	} else {
		img, err = desc.Image()
		if err != nil {
			return nil, nil, fmt.Errorf("reading image %s: %w", ref, err)
		}
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the manifest of %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the manifest of %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, nil, err
	}
	if len(m.Layers) == 0 {
		return nil, nil, fmt.Errorf("image %s has no layers: nothing to unpack", ref)
	}
	out := &events.Image{
		Registry:     ref.Registry,
		Repository:   ref.Repository,
		Tag:          ref.Tag,
		Name:         ref.Name(),
		Digest:       digest.String(),
		MediaType:    string(m.MediaType),
		ConfigDigest: m.Config.Digest.String(),
		Platform:     platform,
		Layers:       make([]events.Layer, 0, len(m.Layers)),
		Manifest:     raw,
	}
	if out.MediaType == "" {
		out.MediaType = string(desc.MediaType)
	}
	for _, l := range m.Layers {
		out.Layers = append(out.Layers, events.Layer{Digest: l.Digest.String(), MediaType: string(l.MediaType), Size: l.Size})
	}
	return out, img, nil
}

// withConfig reads the image config into out: the diff ids the ingesters verify and what
// the flat tree and thin image need (Env, Cmd, …).
func withConfig(ref imageref.Ref, img v1.Image, out *events.Image) error {
	cf, err := img.ConfigFile()
	if err != nil {
		if registry.NotFound(err) {
			// The manifest just read names a config the registry does not have: most likely
			// the tag moved and the old blobs went away. A new attempt reads the manifest again.
			return &staleError{fmt.Errorf("the manifest of %s names config %s, which the registry does not have (the image may have changed while it was read) (%w)",
				ref, out.ConfigDigest, registry.Explain(err))}
		}
		return fmt.Errorf("reading the config %s of %s: %w", out.ConfigDigest, ref, registry.Explain(err))
	}
	if len(cf.RootFS.DiffIDs) != len(out.Layers) {
		return fmt.Errorf("image %s is inconsistent: %d layers in the manifest, %d diff ids in the config", ref, len(out.Layers), len(cf.RootFS.DiffIDs))
	}
	for i := range out.Layers {
		out.Layers[i].DiffID = cf.RootFS.DiffIDs[i].String()
	}
	c := cf.Config
	out.Config = events.Config{Env: c.Env, Cmd: c.Cmd, Entrypoint: c.Entrypoint, WorkingDir: c.WorkingDir, User: c.User, Labels: c.Labels}
	return nil
}

// retryable says a new attempt may succeed: the registry was busy or unreachable, or the
// image changed while it was read. Everything else fails at once.
func retryable(err error) bool {
	var se *staleError
	return registry.Temporary(err) || errors.As(err, &se)
}

// staleError is an image that was read in an inconsistent state.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }
