package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"flatbed.dev/pkg/store"
)

// Recorded is an image the store records as converted: .metadata/<name>/manifest.json.
type Recorded struct {
	Name         string   // registry/repository:tag (or @digest)
	ConfigDigest string   // names its flat tree
	Layers       []string // compressed layer digests, lowest first
	// Platforms are, for a multi-arch image (its manifest.json the index), its platforms as
	// recorded under .metadata/.multiarch (each with Dir, its config and layers); the image's
	// own ConfigDigest and Layers are then empty.
	Platforms []Recorded
	Dir       string // a platform's .multiarch directory, <arch>[:<variant>]
}

// Images lists every image recorded in the store, sorted by name.
func Images(st *store.Store) ([]Recorded, error) {
	root := filepath.Join(st.Root, ".metadata")
	var out []Recorded
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if d.IsDir() && p == st.MultiarchMetadataTop() {
			return filepath.SkipDir // platforms of multi-arch images: read with their image
		}
		if d.IsDir() || d.Name() != "manifest.json" {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if isIndex(p) {
			out = append(out, readMultiarch(st, name))
			return nil
		}
		r, err := readRecorded(p)
		if err != nil {
			return err
		}
		r.Name = name
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the images of %s: %w", st.Root, err)
	}
	return out, nil
}

// foreign layers are not unpacked (DUCC skips them too).
const foreignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

func readRecorded(path string) (Recorded, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Recorded{}, err
	}
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Recorded{}, fmt.Errorf("parsing %s: %w", path, err)
	}
	r := Recorded{ConfigDigest: m.Config.Digest}
	for _, l := range m.Layers {
		if l.MediaType != foreignLayer {
			r.Layers = append(r.Layers, l.Digest)
		}
	}
	if r.ConfigDigest == "" {
		return Recorded{}, fmt.Errorf("%s names no config", path)
	}
	return r, nil
}

// used is what the recorded images need: their flat trees and layers (by hex digest).
type used struct {
	flats, layers map[string]bool
}

func usedBy(images []Recorded) used {
	u := used{flats: map[string]bool{}, layers: map[string]bool{}}
	for _, r := range images {
		if r.ConfigDigest != "" {
			u.flats[store.Hex(r.ConfigDigest)] = true
		}
		for _, l := range r.Layers {
			u.layers[store.Hex(l)] = true
		}
		for _, p := range r.Platforms {
			u.flats[store.Hex(p.ConfigDigest)] = true
			for _, l := range p.Layers {
				u.layers[store.Hex(l)] = true
			}
		}
	}
	return u
}

// isTemp says a directory entry is a writer's temporary, which garbage collection leaves to
// the store's own clean-up (its writer may still be alive).
func isTemp(name string) bool { return strings.HasPrefix(name, ".tmp-") }

// rel is p relative to the repository root, slash-separated.
func rel(st *store.Store, p string) string {
	r, err := filepath.Rel(st.Root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}
