package lifecycle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"flatbed.dev/pkg/podman"
	"flatbed.dev/pkg/store"
)

// PodmanStore lists every recorded image in the store's podman store (create-podman-store),
// from the manifest and config the store keeps. It returns the names added and those it had
// to skip, with why (an image recorded before configs were kept, or whose flat tree is gone).
func PodmanStore(st *store.Store) (added []string, skipped map[string]string, err error) {
	images, err := Images(st)
	if err != nil {
		return nil, nil, err
	}
	skipped = map[string]string{}
	for _, img := range images {
		meta, cfg := st.MetadataDir(img.Name), img.ConfigDigest
		if cfg == "" {
			// A multi-arch image: podman runs the host's platform, listed under the name.
			p, ok := hostPlatform(img)
			if !ok {
				skipped[img.Name] = "a multi-arch image without this host's platform"
				continue
			}
			meta, cfg = st.MultiarchMetadataDir(p.Dir, img.Name), p.ConfigDigest
		}
		manifest, err := os.ReadFile(filepath.Join(meta, "manifest.json"))
		if err != nil {
			return added, skipped, err
		}
		config, err := os.ReadFile(filepath.Join(meta, ConfigFile))
		if err != nil {
			skipped[img.Name] = "no config.json recorded: convert it again with -g"
			continue
		}
		if !st.HasFlat(cfg) {
			skipped[img.Name] = "its flat tree is missing: run verify --repair"
			continue
		}
		h := sha256.Sum256(manifest)
		err = podman.Add(st.Root, podman.Image{Name: img.Name, ConfigDigest: cfg, ManifestDigest: "sha256:" + hex.EncodeToString(h[:]),
			Manifest: manifest, Config: config, FlatDir: rel(st, st.FlatDir(cfg))})
		if err != nil {
			return added, skipped, fmt.Errorf("adding %s to the podman store: %w", img.Name, err)
		}
		added = append(added, img.Name)
	}
	return added, skipped, nil
}
