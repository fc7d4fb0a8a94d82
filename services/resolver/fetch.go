package resolver

import (
	"fmt"
	"slices"

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
func fetch(ref imageref.Ref, ro []remote.Option, maxLayers int) (*events.Description, v1.Image, error) {
	gref, err := ref.GGCR()
	if err != nil {
		return nil, nil, err
	}
	opts := append(slices.Clip(ro), remote.WithPlatform(DefaultPlatform))
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
	platform, index := "", ""
	if desc.MediaType.IsIndex() {
		// remote.Get with WithPlatform already checks the index; Image() picks the platform.
		img, err = desc.Image()
		if err != nil {
			return nil, nil, fmt.Errorf("image %s is an index without a %s/%s image: %w", ref, DefaultPlatform.OS, DefaultPlatform.Architecture, err)
		}
		platform, index = DefaultPlatform.String(), desc.Digest.String()
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
	if len(raw) > events.MaxManifestBytes {
		return nil, nil, fmt.Errorf("the manifest of %s is %d bytes, over the limit of %d: refusing to read it", ref, len(raw), events.MaxManifestBytes)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, fmt.Errorf("parsing the manifest of %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, nil, err
	}
	out := &events.Description{
		Image: events.Image{
			Registry:     ref.Registry,
			Repository:   ref.Repository,
			Tag:          ref.Tag,
			Name:         ref.Name(),
			Digest:       digest.String(),
			MediaType:    string(m.MediaType),
			ConfigDigest: m.Config.Digest.String(),
			Platform:     platform,
			LayerCount:   len(m.Layers),
			IndexDigest:  index,
		},
		Manifest: raw,
	}
	if out.Image.MediaType == "" {
		out.Image.MediaType = string(desc.MediaType)
	}
	if len(m.Layers) == 0 {
		return nil, nil, fmt.Errorf("image %s has no layers: nothing to unpack", ref)
	}
	if n := len(m.Layers); n > maxLayers {
		return nil, nil, fmt.Errorf("image %s has %d layers, more than the limit of %d (--max-layers); an image that deep is hostile or broken (docker runs at most 127)", ref, n, maxLayers)
	}
	if c := m.Config.Size; c <= 0 || c > events.MaxConfigBytes {
		return nil, nil, fmt.Errorf("image %s names a config of %d bytes; a config must be 1 byte to %d bytes (4 MiB, the limit skopeo and containerd apply): refusing to fetch it",
			ref, c, events.MaxConfigBytes)
	}
	for i, l := range m.Layers {
		if l.Size <= 0 {
			return nil, nil, fmt.Errorf("image %s: layer %d (%s) has size %d in the manifest; a layer blob is never empty, so the manifest is wrong: fix the image",
				ref, i, l.Digest, l.Size)
		}
	}
	return out, img, nil
}

// withConfig reads the image config (bounded by the manifest's size for it, checked against
// its digest) and completes the description: the diff ids the ingesters verify and what the
// flat tree and thin image need (Env, Cmd, …).
func withConfig(ref imageref.Ref, img v1.Image, out *events.Description) error {
	cfg, err := img.RawConfigFile()
	if err != nil {
		if registry.NotFound(err) {
			// The manifest just read names a config the registry does not have: most likely
			// the tag moved and the old blobs went away. A new attempt reads the manifest again.
			return registry.Transient(fmt.Errorf("the manifest of %s names config %s, which the registry does not have (the image may have changed while it was read) (%w)",
				ref, out.Image.ConfigDigest, registry.Explain(err)))
		}
		return fmt.Errorf("reading the config %s of %s: %w", out.Image.ConfigDigest, ref, registry.Explain(err))
	}
	d, err := events.Describe(out.Image, out.Manifest, cfg)
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	*out = *d
	return nil
}
