package resolver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/store"
)

// keepDescription makes the description of an image the store already holds readable by the
// thin pusher, which builds that image's thin image from it (its wish's output_format may name
// a thin image the target does not hold yet). The store is the source of truth: the manifest
// (known, or the stored .metadata/<name>/manifest.json) and .metadata/<name>/config.json,
// checked against the image's digests. A store that keeps no config (converted before configs
// were kept) falls back to the description store (the first run stored it there), and then
// to the registry: the manifest and config read by digest. manifest may be nil.
func (s *Service) keepDescription(ctx context.Context, st *store.Store, ref imageref.Ref, img events.Image, manifest []byte) error {
	if manifest == nil {
		manifest, _ = os.ReadFile(st.ManifestPath(img.Name)) // none: read from the registry below
	}
	if config, err := os.ReadFile(filepath.Join(st.MetadataDir(img.Name), lifecycle.ConfigFile)); err == nil && manifest != nil {
		if d, err := events.Describe(img, manifest, config); err == nil {
			return s.Descriptions.Put(ctx, d)
		}
	}
	if _, err := s.Descriptions.Get(ctx, img); err == nil {
		return nil
	} else if !errors.Is(err, events.ErrNoDescription) {
		return err
	}
	gref, err := ref.GGCR()
	if err != nil {
		return events.Permanent(err)
	}
	var config []byte
	err = s.registry().Do(ctx, func(ro []remote.Option) error {
		// By digest: go-containerregistry checks the manifest's, and the config's.
		i, err := remote.Image(gref.Context().Digest(img.Digest), ro...)
		if err != nil {
			return err
		}
		if manifest, err = i.RawManifest(); err != nil {
			return err
		}
		config, err = i.RawConfigFile()
		return err
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return events.Permanent(fmt.Errorf("reading the manifest and config of %s for its thin image (the store keeps no config.json; converting it again with -g keeps one): %w",
			img.Name, registry.Explain(err)))
	}
	d, err := events.Describe(img, manifest, config)
	if err != nil {
		return events.Permanent(fmt.Errorf("image %s: %w", img.Name, err))
	}
	return s.Descriptions.Put(ctx, d)
}
