package podman

import (
	"os"
	"path/filepath"
	"slices"

	"flatbed.dev/pkg/store"
)

// Listed says the podman store of the repository at repoRoot already lists img as Add would
// leave it: its record (manifest, config, name) and its synthetic layer linked to the flat
// tree, so adding it again would change nothing. It reads the store's two JSON files and a
// few links, takes no lock and writes nothing.
func Listed(repoRoot string, img Image) bool {
	root := filepath.Join(repoRoot, Dir)
	var images []imageRecord
	var layers []layerRecord
	if readJSON(filepath.Join(root, "overlay-images", "images.json"), &images) != nil ||
		readJSON(filepath.Join(root, "overlay-layers", "layers.json"), &layers) != nil {
		return false
	}
	id, layer := store.Hex(img.ConfigDigest), layerID(img.ConfigDigest)
	i := slices.IndexFunc(images, func(r imageRecord) bool { return r.ID == id })
	if i < 0 {
		return false
	}
	r := images[i]
	if r.Digest != img.ManifestDigest || r.TopLayer != layer || !slices.Contains(r.Names, img.Name) || !r.Created.Equal(created(img.Config)) {
		return false
	}
	big := map[string][]byte{img.ConfigDigest: img.Config, "manifest": img.Manifest, "manifest-" + img.ManifestDigest: img.Manifest}
	if len(r.BigDataNames) != len(big) {
		return false
	}
	for key, data := range big {
		if r.BigDataDigests[key] != digestOf(data) || r.BigDataSizes[key] != int64(len(data)) {
			return false
		}
		if fi, err := os.Stat(filepath.Join(root, "overlay-images", id, bigDataName(key))); err != nil || fi.Size() != int64(len(data)) {
			return false
		}
	}
	if !slices.ContainsFunc(layers, func(l layerRecord) bool { return l.ID == layer }) {
		return false
	}
	dir := filepath.Join(root, "overlay", layer)
	if t, err := os.Readlink(filepath.Join(dir, "diff")); err != nil || t != "../../../"+img.FlatDir {
		return false
	}
	short := shortID(layer)
	if b, err := os.ReadFile(filepath.Join(dir, "link")); err != nil || string(b) != short {
		return false
	}
	t, err := os.Readlink(filepath.Join(root, "overlay", "l", short))
	if err != nil || t != "../"+layer+"/diff" {
		return false
	}
	// containers/storage opens these even in a read-only store.
	for _, lock := range []string{"overlay-images/images.lock", "overlay-layers/layers.lock"} {
		if _, err := os.Stat(filepath.Join(root, lock)); err != nil {
			return false
		}
	}
	return true
}
