package resolver

import (
	"encoding/json"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/events"
	"flatbed.dev/pkg/store"
)

// layersIntact says every layer the stored manifest of name lists has its layerfs directory
// in the store: a layer directory removed after a good run makes the image "not converted",
// so the run brings the layer back instead of saying "already converted" over a hole. It
// costs one read of the small stored manifest (the page cache's, just read to compare its
// config) and a stat per layer, no registry request. A stored manifest that does not describe
// img (another config, an index, unreadable) is not judged here: the callers' own checks are.
func layersIntact(st *store.Store, img *events.Image) bool {
	raw, err := os.ReadFile(st.ManifestPath(img.Name))
	if err != nil || len(raw) > events.MaxManifestBytes {
		return true
	}
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	if json.Unmarshal(raw, &m) != nil || m.Config.Digest != img.ConfigDigest {
		return true
	}
	for _, l := range m.Layers {
		if _, err := v1.NewHash(l.Digest); err != nil || !st.HasLayer(l.Digest) {
			return false
		}
	}
	return true
}

// intact says what a good run left is still whole, as far as stat calls tell: every layer
// the stored manifest lists has its layerfs, and a public path that is a plain symlink leads
// to the image's flat tree (a dangling or misdirected one is made again by the run). A
// variant symlink through $(CVMFS_ARCH) resolves only on a client and is not judged here.
func intact(st *store.Store, img *events.Image) bool {
	if !layersIntact(st, img) {
		return false
	}
	public := st.PublicPath(img.Name)
	target, err := os.Readlink(public)
	if err != nil || strings.Contains(target, "$(") {
		return true // missing (the caller's Lstat says so) or not flatbed's plain link
	}
	got, err := os.Stat(public)
	if err != nil {
		return false
	}
	want, err := os.Stat(st.FlatDir(img.ConfigDigest))
	return err == nil && os.SameFile(got, want)
}
