package lifecycle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/pkg/multiarch"
	"flatbed.dev/pkg/store"
)

// PlatformDone says the store holds one platform of the multi-arch image name as the
// flattener leaves it: its manifest recorded under .metadata/.multiarch/<dir>/<name> with the
// digest p names, the flat tree of its config (p's, unless p names none), and its link
// .multiarch/<dir>/<name>.
func PlatformDone(st *store.Store, name string, p PlatformRecord) bool {
	if p.Dir == "" || store.CheckName(name) != nil {
		return false
	}
	path := filepath.Join(st.MultiarchMetadataDir(p.Dir, name), "manifest.json")
	raw, err := os.ReadFile(path)
	if err != nil || digestOf(raw) != p.ManifestDigest {
		return false
	}
	cfg, err := store.ReadManifestConfig(path)
	if err != nil || cfg == "" || (p.ConfigDigest != "" && cfg != p.ConfigDigest) || !st.HasFlat(cfg) {
		return false
	}
	_, err = os.Stat(st.MultiarchPath(p.Dir, name))
	return err == nil
}

// ReadMultiarch reads what the store records of the multi-arch image name: its record and
// the index (.metadata/<name>/manifest.json). ok is false when name is not recorded as one,
// or its index is not the one the record names.
func ReadMultiarch(st *store.Store, name string) (rec *Record, index []byte, ok bool) {
	rec, err := ReadRecord(st, name)
	if err != nil || rec == nil || len(rec.Platforms) == 0 {
		return nil, nil, false
	}
	index, err = os.ReadFile(st.ManifestPath(name))
	if err != nil || digestOf(index) != rec.IndexDigest {
		return nil, nil, false
	}
	return rec, index, true
}

// Complete says every platform a multi-arch record names is in place.
func Complete(st *store.Store, name string, rec *Record) bool {
	for _, p := range rec.Platforms {
		if !PlatformDone(st, name, p) {
			return false
		}
	}
	return len(rec.Platforms) > 0
}

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// isIndex says the recorded manifest at path is an index: a multi-arch image's.
func isIndex(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var m struct {
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	return json.Unmarshal(b, &m) == nil && m.Manifests != nil && m.Config == nil
}

// readMultiarch is the multi-arch image name with the platforms its record names, as far as
// they are recorded (Verify says what is missing).
func readMultiarch(st *store.Store, name string) Recorded {
	r := Recorded{Name: name}
	rec, err := ReadRecord(st, name)
	if err != nil || rec == nil {
		return r
	}
	for _, p := range rec.Platforms {
		if p.Dir == "" || strings.ContainsAny(p.Dir, "/\\") || p.Dir == "." || p.Dir == ".." {
			continue
		}
		pr, err := readRecorded(filepath.Join(st.MultiarchMetadataDir(p.Dir, name), "manifest.json"))
		if err != nil {
			pr = Recorded{ConfigDigest: p.ConfigDigest}
		}
		pr.Name, pr.Dir = name, p.Dir
		r.Platforms = append(r.Platforms, pr)
	}
	return r
}

// platformRecords lists every platform recorded under .metadata/.multiarch, whether or not
// its image is complete: what garbage collection keeps.
func platformRecords(st *store.Store) ([]Recorded, error) {
	top := st.MultiarchMetadataTop()
	var out []Recorded
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == top {
			return filepath.SkipDir
		}
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "manifest.json" {
			return nil
		}
		r, err := readRecorded(p)
		if err != nil {
			return nil // a platform's record being written: its tree is young anyway
		}
		rel, _ := filepath.Rel(top, filepath.Dir(p))
		dir, name, _ := strings.Cut(filepath.ToSlash(rel), "/")
		r.Name, r.Dir = name, dir
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the platforms recorded in %s: %w", top, err)
	}
	return out, nil
}

// linkedFlats lists the flat trees (by hex) the links under .multiarch point to.
func linkedFlats(st *store.Store) (map[string]bool, error) {
	top := st.MultiarchDir()
	flat := filepath.Join(st.Root, ".flat") + string(filepath.Separator)
	out := map[string]bool{}
	dirs, err := os.ReadDir(top)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if !d.IsDir() || isTemp(d.Name()) { // alias symlinks lead to the same directories
			continue
		}
		err := filepath.WalkDir(filepath.Join(top, d.Name()), func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.Type()&fs.ModeSymlink == 0 {
				return err
			}
			t, err := os.Readlink(p)
			if err != nil {
				return nil
			}
			if abs := filepath.Join(filepath.Dir(p), t); strings.HasPrefix(abs, flat) {
				out[filepath.Base(abs)] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// inUse is what garbage collection must keep: every recorded image's flat trees and layers,
// every platform recorded under .metadata/.multiarch and every flat tree a .multiarch link
// reaches, complete image or not.
func inUse(st *store.Store) (used, error) {
	images, err := Images(st)
	if err != nil {
		return used{}, err
	}
	plats, err := platformRecords(st)
	if err != nil {
		return used{}, err
	}
	u := usedBy(append(images, plats...))
	linked, err := linkedFlats(st)
	if err != nil {
		return used{}, err
	}
	for h := range linked {
		u.flats[h] = true
	}
	return u, nil
}

// platformPaths lists what the store holds of the platforms of image name: each platform's
// record directory (.metadata/.multiarch/<dir>/<name>) first, then its link
// (.multiarch/<dir>/<name>), for every platform directory there is.
func platformPaths(st *store.Store, name string) ([]string, error) {
	var metas, links []string
	for _, top := range []string{st.MultiarchMetadataTop(), st.MultiarchDir()} {
		dirs, err := os.ReadDir(top)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			if !d.IsDir() || isTemp(d.Name()) {
				continue // alias symlinks lead to the same directories
			}
			if top == st.MultiarchDir() {
				p := st.MultiarchPath(d.Name(), name)
				if fi, err := os.Lstat(p); err == nil {
					if fi.Mode()&fs.ModeSymlink == 0 {
						return nil, fmt.Errorf("%s is not a symlink: not flatbed's, left alone", p)
					}
					links = append(links, p)
				}
				continue
			}
			if p := st.MultiarchMetadataDir(d.Name(), name); exists(p) {
				metas = append(metas, p)
			}
		}
	}
	return append(metas, links...), nil
}

// removePlatforms removes what platformPaths listed, records first, and the directories
// left empty.
func removePlatforms(st *store.Store, paths []string) error {
	for _, p := range paths {
		if err := store.RemoveAll(p); err != nil {
			return fmt.Errorf("removing %s: %w", p, err)
		}
		top := st.MultiarchDir()
		if strings.HasPrefix(p, st.MultiarchMetadataTop()+string(filepath.Separator)) {
			top = st.MultiarchMetadataTop()
		}
		// Up to the platform directory: it stays, with its aliases.
		rest, _ := filepath.Rel(top, p)
		dir, _, _ := strings.Cut(rest, string(filepath.Separator))
		pruneEmpty(filepath.Join(top, dir), filepath.Dir(p))
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// allLayers lists the layers of img, of every platform for a multi-arch image.
func allLayers(img Recorded) []string {
	out := slices.Clone(img.Layers)
	for _, p := range img.Platforms {
		out = append(out, p.Layers...)
	}
	return out
}

// removeTrees removes img's flat trees, and for a multi-arch image each platform's recorded
// manifest, so converting it again rebuilds them.
func removeTrees(st *store.Store, img Recorded) error {
	if img.ConfigDigest != "" {
		return store.RemoveAll(st.FlatDir(img.ConfigDigest))
	}
	for _, p := range img.Platforms {
		if err := os.Remove(filepath.Join(st.MultiarchMetadataDir(p.Dir, img.Name), "manifest.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if p.ConfigDigest != "" {
			if err := store.RemoveAll(st.FlatDir(p.ConfigDigest)); err != nil {
				return err
			}
		}
	}
	return nil
}

// verifyMulti checks a multi-arch image: its public path is the variant symlink through
// $(CVMFS_ARCH), and each platform its record names is linked from .multiarch to a flat tree
// holding what its record says.
func verifyMulti(st *store.Store, img Recorded) []Problem {
	var out []Problem
	add := func(path, what string) { out = append(out, Problem{Image: img.Name, Path: path, What: what}) }
	want := store.RelTarget(img.Name, path.Join(".multiarch", multiarch.CVMFSArch, img.Name))
	switch target, err := os.Readlink(st.PublicPath(img.Name)); {
	case errors.Is(err, fs.ErrNotExist):
		add(img.Name, "the public path is missing")
	case err != nil:
		add(img.Name, "the public path is not a symlink")
	case target != want:
		add(img.Name, fmt.Sprintf("the public path links to %s, not %s", target, want))
	}
	rec, err := ReadRecord(st, img.Name)
	if err != nil || rec == nil || len(rec.Platforms) == 0 {
		add(rel(st, st.MetadataDir(img.Name)), "the index is recorded without its platforms")
		return out
	}
	for _, p := range img.Platforms {
		meta := st.MultiarchMetadataDir(p.Dir, img.Name)
		if !exists(filepath.Join(meta, "manifest.json")) {
			add(rel(st, meta), "the platform's manifest is not recorded")
			continue
		}
		for _, pr := range verifyLinked(st, img.Name, st.MultiarchPath(p.Dir, img.Name), st.FlatDir(p.ConfigDigest), meta, "the link") {
			pr.What = "platform " + p.Dir + ": " + pr.What
			out = append(out, pr)
		}
	}
	return out
}

// Host is the platform whose tree the podman store lists for a multi-arch image.
var Host = multiarch.Host()

// hostPlatform is the platform of the multi-arch image img that runs on Host.
func hostPlatform(img Recorded) (Recorded, bool) {
	var ps []v1.Platform
	for _, p := range img.Platforms {
		arch, variant, _ := strings.Cut(p.Dir, ":")
		ps = append(ps, v1.Platform{OS: Host.OS, Architecture: arch, Variant: variant})
	}
	if len(ps) == 0 {
		return Recorded{}, false
	}
	i := multiarch.Primary(ps, Host)
	if ps[i].Architecture != Host.Architecture {
		return Recorded{}, false
	}
	return img.Platforms[i], true
}
