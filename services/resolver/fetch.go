package resolver

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/events"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/multiarch"
	"flatbed.dev/pkg/registry"
)

// Host is the platform an index resolves to without -m/--multi-arch: the one this process
// runs on (a variable for tests).
var Host = multiarch.Host()

// resolution is what fetch read of an image: one manifest, or the platforms chosen from the
// index the tag named (Multi: -m, each under .multiarch), Primary standing for them all.
type resolution struct {
	Descs   []*events.Description
	Images  []v1.Image
	Primary int
	Multi   bool
	Index   []byte   // the raw index, when the tag named one
	Skipped []string // the index's platforms not converted (no -m)
}

// fetch reads the manifest, or the index and the manifests of the platforms it chooses:
// every linux one with multi (-m), else the host's. No blob is read here: the config is read
// by withConfig, only when the image needs converting.
func fetch(ref imageref.Ref, ro []remote.Option, maxLayers int, multi bool) (*resolution, error) {
	gref, err := ref.GGCR()
	if err != nil {
		return nil, err
	}
	// One GET: every digest published below comes from these bytes, so a tag that moves
	// while we read cannot mix two images (the config and an index's children are read by
	// digest, and go-containerregistry checks those digests).
	desc, err := remote.Get(gref, ro...)
	if err != nil {
		if registry.NotFound(err) {
			what := "tag " + ref.Tag
			if ref.Tag == "" {
				what = "digest " + ref.Digest
			}
			return nil, fmt.Errorf("image %s not found: %s has no %s in repository %s; check the name and tag (%w)",
				ref, ref.Registry, what, ref.Repository, registry.Explain(err))
		}
		if registry.Denied(err) {
			return nil, fmt.Errorf("the registry %s refused access to %s; check the credentials for it (DUCC_AUTH_REGISTRIES or docker login) (%w)",
				ref.Registry, ref, registry.Explain(err))
		}
		return nil, fmt.Errorf("fetching the manifest of %s: %w", ref, registry.Explain(err))
	}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("reading image %s: %w", ref, err)
		}
		d, err := describe(ref, img, desc.MediaType, "", "", maxLayers)
		if err != nil {
			return nil, err
		}
		return &resolution{Descs: []*events.Description{d}, Images: []v1.Image{img}}, nil
	}
	if len(desc.Manifest) > events.MaxManifestBytes {
		return nil, fmt.Errorf("the index of %s is %d bytes, over the limit of %d: refusing to read it", ref, len(desc.Manifest), events.MaxManifestBytes)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading the index of %s: %w", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("parsing the index of %s: %w", ref, err)
	}
	chosen, skipped, err := multiarch.Select(im, multi, Host)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	if len(chosen) > events.MaxPlatforms {
		return nil, fmt.Errorf("image %s: the index has %d linux platforms, more than the limit of %d", ref, len(chosen), events.MaxPlatforms)
	}
	out := &resolution{Multi: multi, Index: desc.Manifest, Skipped: skipped}
	var platforms []v1.Platform
	for _, c := range chosen {
		platform := multiarch.String(*c.Platform)
		img, err := idx.Image(c.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading the %s image of %s: %w", platform, ref, registry.Explain(err))
		}
		d, err := describe(ref, img, c.MediaType, platform, desc.Digest.String(), maxLayers)
		if err != nil {
			if multi {
				err = fmt.Errorf("platform %s: %w", platform, err)
			}
			return nil, err
		}
		out.Descs, out.Images = append(out.Descs, d), append(out.Images, img)
		platforms = append(platforms, *c.Platform)
	}
	out.Primary = multiarch.Primary(platforms, Host)
	return out, nil
}

// describe reads one image's manifest and checks its bounds: what the resolver refuses
// before it fetches a blob.
func describe(ref imageref.Ref, img v1.Image, mediaType types.MediaType, platform, index string, maxLayers int) (*events.Description, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the manifest of %s: %w", ref, registry.Explain(err))
	}
	if len(raw) > events.MaxManifestBytes {
		return nil, fmt.Errorf("the manifest of %s is %d bytes, over the limit of %d: refusing to read it", ref, len(raw), events.MaxManifestBytes)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("parsing the manifest of %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
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
		out.Image.MediaType = string(mediaType)
	}
	if len(m.Layers) == 0 {
		return nil, fmt.Errorf("image %s has no layers: nothing to unpack", ref)
	}
	if n := len(m.Layers); n > maxLayers {
		return nil, fmt.Errorf("image %s has %d layers, more than the limit of %d (--max-layers); an image that deep is hostile or broken (docker runs at most 127)", ref, n, maxLayers)
	}
	if c := m.Config.Size; c <= 0 || c > events.MaxConfigBytes {
		return nil, fmt.Errorf("image %s names a config of %d bytes; a config must be 1 byte to %d bytes (4 MiB, the limit skopeo and containerd apply): refusing to fetch it",
			ref, c, events.MaxConfigBytes)
	}
	for i, l := range m.Layers {
		if l.Size <= 0 {
			return nil, fmt.Errorf("image %s: layer %d (%s) has size %d in the manifest; a layer blob is never empty, so the manifest is wrong: fix the image",
				ref, i, l.Digest, l.Size)
		}
	}
	return out, nil
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
