package podman

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/store"
)

// Dir is the store's directory in a repository, where podman's storage.conf names it:
// additionalimagestores = ["<repository>/podmanStore"].
const Dir = "podmanStore"

// Image is one converted image as podman should see it.
type Image struct {
	Name           string // registry/repository:tag (or @digest), as podman lists it
	ConfigDigest   string // sha256:…, the image ID
	ManifestDigest string // sha256:…
	Manifest       []byte // the raw manifest
	Config         []byte // the raw config
	FlatDir        string // the flat tree, relative to the repository root (.flat/xx/<hex>)
	Size           int64  // bytes of the flat tree's files; 0: Add counts them
}

// imageRecord is one entry of overlay-images/images.json (containers/storage's Image).
type imageRecord struct {
	ID             string            `json:"id"`
	Digest         string            `json:"digest,omitempty"`
	Digests        []string          `json:"digests,omitempty"`
	Names          []string          `json:"names,omitempty"`
	TopLayer       string            `json:"layer,omitempty"`
	Metadata       string            `json:"metadata,omitempty"`
	BigDataNames   []string          `json:"big-data-names,omitempty"`
	BigDataSizes   map[string]int64  `json:"big-data-sizes,omitempty"`
	BigDataDigests map[string]string `json:"big-data-digests,omitempty"`
	Created        time.Time         `json:"created"`
}

// layerRecord is one entry of overlay-layers/layers.json (containers/storage's Layer).
type layerRecord struct {
	ID               string    `json:"id"`
	Created          time.Time `json:"created"`
	UncompressedSize int64     `json:"diff-size"` // podman refuses a layer of unknown size
	// UncompressedDigest marks the size as known to containers/storage. The synthetic layer
	// has no tar of its own, so it names the flat tree by the image's config instead: podman
	// lists, inspects and runs the image; it cannot push it from here (nor should it).
	UncompressedDigest string `json:"diff-digest"`
}

// Add lists img in the podman store of the repository at repoRoot: one synthetic layer whose
// diff is the image's flat tree (no copy), the image's manifest and config, and its name
// (moved from any other image that had it, as a tag moves). Adding again is harmless.
func Add(repoRoot string, img Image) error {
	return withStore(repoRoot, func(s *state) error {
		id := store.Hex(img.ConfigDigest)
		layerID := layerID(img.ConfigDigest)
		if err := s.layerDir(layerID, img.FlatDir); err != nil {
			return err
		}
		if !slices.ContainsFunc(s.layers, func(l layerRecord) bool { return l.ID == layerID }) {
			size := img.Size
			if size <= 0 {
				var err error
				if size, err = treeSize(filepath.Join(repoRoot, img.FlatDir)); err != nil {
					return err
				}
			}
			s.layers = append(s.layers, layerRecord{ID: layerID, Created: created(img.Config), UncompressedSize: size,
				UncompressedDigest: "sha256:" + layerID})
		}
		big := map[string][]byte{img.ConfigDigest: img.Config, "manifest": img.Manifest, "manifest-" + img.ManifestDigest: img.Manifest}
		rec := imageRecord{ID: id, Digest: img.ManifestDigest, Digests: []string{img.ManifestDigest}, TopLayer: layerID,
			BigDataSizes: map[string]int64{}, BigDataDigests: map[string]string{}, Created: created(img.Config)}
		for key, data := range big {
			if _, err := store.WriteFileAtomic(filepath.Join(s.root, "overlay-images", id, bigDataName(key)), data, 0o644); err != nil {
				return err
			}
			rec.BigDataNames = append(rec.BigDataNames, key)
			rec.BigDataSizes[key] = int64(len(data))
			rec.BigDataDigests[key] = digestOf(data)
		}
		slices.Sort(rec.BigDataNames)
		for i := range s.images { // a tag names one image
			s.images[i].Names = slices.DeleteFunc(s.images[i].Names, func(n string) bool { return n == img.Name })
		}
		if i := slices.IndexFunc(s.images, func(r imageRecord) bool { return r.ID == id }); i >= 0 {
			rec.Names = s.images[i].Names
			s.images[i] = rec
		} else {
			s.images = append(s.images, rec)
		}
		i := slices.IndexFunc(s.images, func(r imageRecord) bool { return r.ID == id })
		s.images[i].Names = append(s.images[i].Names, img.Name)
		slices.Sort(s.images[i].Names)
		return nil
	})
}

// Remove takes name off the image that has it. An image left without names is removed, and
// its layer with it (the flat tree itself is the store's, not podman's). Removing a name
// nobody has is harmless.
func Remove(repoRoot, name string) error {
	return withStore(repoRoot, func(s *state) error {
		var keep []imageRecord
		for _, r := range s.images {
			r.Names = slices.DeleteFunc(r.Names, func(n string) bool { return n == name })
			if len(r.Names) > 0 {
				keep = append(keep, r)
				continue
			}
			if err := s.drop(r); err != nil {
				return err
			}
		}
		s.images = keep
		return nil
	})
}

// Names lists the image names the store holds, sorted.
func Names(repoRoot string) ([]string, error) {
	var images []imageRecord
	if err := readJSON(filepath.Join(repoRoot, Dir, "overlay-images", "images.json"), &images); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range images {
		out = append(out, r.Names...)
	}
	slices.Sort(out)
	return out, nil
}

// state is the store's two JSON files while a change is made under its lock.
type state struct {
	root   string
	images []imageRecord
	layers []layerRecord
}

// withStore runs change on the store's records under an exclusive lock on the store
// directory and writes them back atomically (readers see the old or the new files).
func withStore(repoRoot string, change func(*state) error) error {
	root := filepath.Join(repoRoot, Dir)
	for _, d := range []string{"overlay/l", "overlay-images", "overlay-layers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("podman store: %w", err)
		}
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("podman store: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("podman store: locking %s: %w", root, err)
	}
	defer unix.Flock(fd, unix.LOCK_UN)
	s := &state{root: root, images: []imageRecord{}, layers: []layerRecord{}}
	imagesJSON := filepath.Join(root, "overlay-images", "images.json")
	layersJSON := filepath.Join(root, "overlay-layers", "layers.json")
	if err := readJSON(imagesJSON, &s.images); err != nil {
		return err
	}
	if err := readJSON(layersJSON, &s.layers); err != nil {
		return err
	}
	if err := change(s); err != nil {
		return fmt.Errorf("podman store: %w", err)
	}
	// containers/storage opens these lock files even in a read-only store: they must exist.
	for _, lock := range []string{"overlay-images/images.lock", "overlay-layers/layers.lock"} {
		if _, err := store.WriteFileAtomic(filepath.Join(root, lock), nil, 0o644); err != nil {
			return err
		}
	}
	// Sorted, and dated by the images' own configs: the files depend on which images the store
	// holds, not on the order or the time they arrived.
	slices.SortFunc(s.images, func(a, b imageRecord) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(s.layers, func(a, b layerRecord) int { return strings.Compare(a.ID, b.ID) })
	for path, v := range map[string]any{imagesJSON: s.images, layersJSON: s.layers} {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := store.WriteFileAtomic(path, b, 0o644); err != nil {
			return fmt.Errorf("podman store: %w", err)
		}
	}
	return nil
}

// layerDir makes overlay/<layer>/diff a symlink to the flat tree and gives the layer the short
// name overlay's mounts use (overlay/<layer>/link and overlay/l/<link> -> ../<layer>/diff).
func (s *state) layerDir(id, flatDir string) error {
	if err := store.CheckName(flatDir); err != nil {
		return fmt.Errorf("flat tree %q: %w", flatDir, err)
	}
	dir := filepath.Join(s.root, "overlay", id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// From <repo>/podmanStore/overlay/<layer>/ the repository root is three levels up.
	if _, err := store.SymlinkAtomic("../../../"+flatDir, filepath.Join(dir, "diff")); err != nil {
		return err
	}
	short := shortID(id)
	if _, err := store.WriteFileAtomic(filepath.Join(dir, "link"), []byte(short), 0o644); err != nil {
		return err
	}
	_, err := store.SymlinkAtomic("../"+id+"/diff", filepath.Join(s.root, "overlay", "l", short))
	return err
}

// drop removes an image's big data and its layer.
func (s *state) drop(r imageRecord) error {
	if err := store.RemoveAll(filepath.Join(s.root, "overlay-images", r.ID)); err != nil {
		return err
	}
	s.layers = slices.DeleteFunc(s.layers, func(l layerRecord) bool { return l.ID == r.TopLayer })
	return s.removeLayerDir(r.TopLayer)
}

func (s *state) removeLayerDir(id string) error {
	if id == "" {
		return nil
	}
	if err := os.Remove(filepath.Join(s.root, "overlay", "l", shortID(id))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return store.RemoveAll(filepath.Join(s.root, "overlay", id))
}

// layerID names the one synthetic layer of an image: derived from its config, so the same
// image always gets the same layer.
func layerID(configDigest string) string {
	h := sha256.Sum256([]byte("flatbed flat tree " + configDigest))
	return hex.EncodeToString(h[:])
}

// shortID is the layer's 26-character link name, as containers/storage makes them.
func shortID(layer string) string {
	h := sha256.Sum256([]byte(layer))
	return base32.StdEncoding.EncodeToString(h[:])[:26]
}

// bigDataName is the file name containers/storage gives an image's big-data item: the key
// itself when it is lower-case letters, digits and dots, else "=" and its base64.
func bigDataName(key string) string {
	for _, c := range key {
		if c != '.' && !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') {
			return "=" + base64.StdEncoding.EncodeToString([]byte(key))
		}
	}
	return key
}

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("podman store: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("podman store: parsing %s: %w", path, err)
	}
	return nil
}

// treeSize adds up the sizes of the regular files below dir, without following symlinks.
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring the flat tree: %w", err)
	}
	return n, nil
}

// RemoveUnnamed removes the images that have no name left (a tag that moved to another
// image leaves the old one nameless), with their layers.
func RemoveUnnamed(repoRoot string) error {
	if _, err := os.Stat(filepath.Join(repoRoot, Dir)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return withStore(repoRoot, func(s *state) error {
		var keep []imageRecord
		for _, r := range s.images {
			if len(r.Names) > 0 {
				keep = append(keep, r)
				continue
			}
			if err := s.drop(r); err != nil {
				return err
			}
		}
		s.images = keep
		return nil
	})
}

// created is the image's creation time from its config (zero when it has none).
func created(config []byte) time.Time {
	var c struct {
		Created time.Time `json:"created"`
	}
	_ = json.Unmarshal(config, &c)
	return c.Created.UTC()
}
