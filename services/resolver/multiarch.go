package resolver

import (
	"bytes"
	"cmp"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/events"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/multiarch"
	"flatbed.dev/pkg/store"
)

// unchangedMulti is unchanged for a -m wish: the store records ref's name as a multi-arch
// image with every platform in place, and one HEAD names the index it recorded.
func unchangedMulti(st *store.Store, ref imageref.Ref, ro []remote.Option) (*resolution, bool, error) {
	r, ok := recordedMulti(st, ref)
	if !ok {
		return nil, false, nil
	}
	digest, ok, err := tagDigest(ref, ro)
	if err != nil || !ok || digest != r.Descs[0].Image.IndexDigest {
		return nil, false, err
	}
	return r, true, nil
}

// recordedMulti is the multi-arch image the store records under ref's name, each platform as
// its recorded manifest describes it.
func recordedMulti(st *store.Store, ref imageref.Ref) (*resolution, bool) {
	name := ref.Name()
	rec, index, ok := lifecycle.ReadMultiarch(st, name)
	if !ok || !lifecycle.Complete(st, name, rec) || len(rec.Platforms) > events.MaxPlatforms {
		return nil, false
	}
	r := &resolution{Multi: true, Index: index}
	var platforms []v1.Platform
	for _, p := range rec.Platforms {
		raw, err := os.ReadFile(filepath.Join(st.MultiarchMetadataDir(p.Dir, name), "manifest.json"))
		if err != nil {
			return nil, false
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, false
		}
		pl, err := multiarch.Parse(p.Platform)
		if err != nil {
			return nil, false
		}
		img := events.Image{Registry: ref.Registry, Repository: ref.Repository, Tag: ref.Tag, Name: name,
			Digest: p.ManifestDigest, MediaType: string(cmp.Or(m.MediaType, types.OCIManifestSchema1)),
			ConfigDigest: m.Config.Digest.String(), Platform: p.Platform, LayerCount: len(m.Layers), IndexDigest: rec.IndexDigest}
		if img.Validate() != nil {
			return nil, false
		}
		r.Descs = append(r.Descs, &events.Description{Image: img, Manifest: raw})
		platforms = append(platforms, pl)
	}
	r.Primary = multiarch.Primary(platforms, Host)
	return r, true
}

// convertedMulti says the store records the index r read under its name with every platform
// r chose in place.
func convertedMulti(st *store.Store, r *resolution) bool {
	name := r.Descs[0].Image.Name
	rec, _, ok := lifecycle.ReadMultiarch(st, name)
	if !ok || rec.IndexDigest != r.Descs[0].Image.IndexDigest || len(rec.Platforms) != len(r.Descs) {
		return false
	}
	for _, d := range r.Descs {
		p := lifecycle.PlatformRecord{Platform: d.Image.Platform, Dir: multiarch.DirOf(d.Image.Platform),
			ManifestDigest: d.Image.Digest, ConfigDigest: d.Image.ConfigDigest}
		if !lifecycle.PlatformDone(st, name, p) {
			return false
		}
	}
	return true
}
