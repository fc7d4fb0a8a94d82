package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/store"
)

// RecordFile is what the flattener records next to an image's manifest
// (.metadata/<name>/flatbed.json): the image as wished and what its flat tree holds.
const RecordFile = "flatbed.json"

// ConfigFile is the raw image config, kept next to the recorded manifest
// (.metadata/<name>/config.json) by the flattener.
const ConfigFile = "config.json"

// Record is the content of RecordFile.
type Record struct {
	Image string       `json:"image"`          // as wished, with its scheme: what to convert again
	Flat  *layer.Tally `json:"flat,omitempty"` // what the flat tree held when it was published
	// ManifestDigest is the digest of the manifest recorded beside (manifest.json), and
	// IndexDigest that of the index the name pointed to when the manifest was picked from one:
	// what the resolver compares a HEAD of the name with.
	ManifestDigest string `json:"manifest_digest,omitempty"`
	IndexDigest    string `json:"index_digest,omitempty"`
	// Platform is the platform the manifest was picked for from that index (os/arch[/variant]).
	Platform string `json:"platform,omitempty"`
	// Platforms are, in the record of a multi-arch image (-m; manifest.json is then the index
	// and the public path a variant symlink), the platforms converted, each recorded under
	// .metadata/.multiarch/<dir>/<name> and linked from .multiarch/<dir>/<name>.
	Platforms []PlatformRecord `json:"platforms,omitempty"`
}

// PlatformRecord is one platform of a multi-arch image, in its Record.
type PlatformRecord struct {
	Platform       string `json:"platform"` // os/arch[/variant]
	Dir            string `json:"dir"`      // <arch>[:<variant>], its .multiarch directory
	ManifestDigest string `json:"manifest_digest"`
	ConfigDigest   string `json:"config_digest"`
}

// ReadRecord reads the record of image name (nil, nil when there is none).
func ReadRecord(st *store.Store, name string) (*Record, error) {
	return readRecordIn(st.MetadataDir(name), name)
}

// readRecordIn reads the record in the metadata directory dir (nil, nil when there is none).
func readRecordIn(dir, name string) (*Record, error) {
	b, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("parsing the record of %s: %w", name, err)
	}
	return &r, nil
}

// Problem is one way the store differs from what it records.
type Problem struct {
	Image string // the recorded image it concerns ("" for a stray temporary)
	Path  string // relative to the repository
	What  string
	// Layer is the damaged layer's digest, when the problem is a layer's.
	Layer string
}

func (p Problem) String() string {
	if p.Image == "" {
		return p.Path + ": " + p.What
	}
	return p.Image + ": " + p.Path + ": " + p.What
}

// Verify checks the store against what it records, for every image or the named ones: the
// public path links to the flat tree, the flat tree and every layer are there and hold what
// they held when published (their tallies), and no temporary is left behind.
func Verify(st *store.Store, names ...string) ([]Problem, error) {
	images, err := Images(st)
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		images = slices.DeleteFunc(images, func(r Recorded) bool { return !slices.Contains(names, r.Name) })
		for _, n := range names {
			if !slices.ContainsFunc(images, func(r Recorded) bool { return r.Name == n }) {
				return nil, fmt.Errorf("image %s is not recorded in %s", n, st.Root)
			}
		}
	}
	var out []Problem
	layers := map[string][]Problem{} // checked once however many images share a layer
	for _, img := range images {
		if img.ConfigDigest == "" {
			out = append(out, verifyMulti(st, img)...) // multiarch.go
		} else {
			out = append(out, verifyImage(st, img)...)
		}
		for _, d := range allLayers(img) {
			ps, ok := layers[d]
			if !ok {
				ps = verifyLayer(st, d)
				layers[d] = ps
			}
			for _, p := range ps {
				p.Image = img.Name
				out = append(out, p)
			}
		}
	}
	if len(names) == 0 {
		out = append(out, temporaries(st)...)
	}
	return out, nil
}

func verifyImage(st *store.Store, img Recorded) []Problem {
	return verifyLinked(st, img.Name, st.PublicPath(img.Name), st.FlatDir(img.ConfigDigest), st.MetadataDir(img.Name), "the public path")
}

// verifyLinked checks that link (what names image) links to the flat tree flat, which holds
// what the record in metaDir says it held.
func verifyLinked(st *store.Store, image, link, flat, metaDir, what string) []Problem {
	var out []Problem
	add := func(path, what string) { out = append(out, Problem{Image: image, Path: path, What: what}) }
	flatRel, linkRel := rel(st, flat), rel(st, link)
	want, _ := filepath.Rel(filepath.Dir(link), flat)
	switch target, err := os.Readlink(link); {
	case errors.Is(err, fs.ErrNotExist):
		add(linkRel, what+" is missing")
	case err != nil:
		add(linkRel, what+" is not a symlink")
	case target != want:
		add(linkRel, fmt.Sprintf("%s links to %s, not %s", what, target, want))
	}
	fi, err := os.Stat(flat)
	if err != nil || !fi.IsDir() {
		add(flatRel, "the flat tree is missing")
		return out
	}
	if _, err := os.Stat(link); err != nil && len(out) == 0 {
		add(linkRel, what+" does not resolve")
	}
	rec, err := readRecordIn(metaDir, image)
	if err != nil {
		add(rel(st, metaDir), err.Error())
	}
	if rec != nil && rec.Flat != nil {
		got, err := layer.Count(flat)
		if err != nil {
			add(flatRel, err.Error())
		} else if d := rec.Flat.Diff(got); d != "" {
			add(flatRel, "the flat tree was changed: "+d)
		}
	}
	return out
}

func verifyLayer(st *store.Store, digest string) []Problem {
	p := func(path, what string) []Problem {
		return []Problem{{Path: path, What: what, Layer: digest}}
	}
	fsDir := st.LayerFS(digest)
	if fi, err := os.Stat(fsDir); err != nil || !fi.IsDir() {
		return p(rel(st, st.LayerDir(digest)), "the layer is missing")
	}
	m, err := layer.ReadMeta(st.LayerMeta(digest))
	if err != nil {
		return p(rel(st, st.LayerMeta(digest)), "the layer's metadata is unreadable: "+err.Error())
	}
	if m.Tally == nil {
		return nil // extracted before tallies were recorded: nothing to compare
	}
	got, err := layer.Count(fsDir)
	if err != nil {
		return p(rel(st, fsDir), err.Error())
	}
	if d := m.Tally.Diff(got); d != "" {
		return p(rel(st, fsDir), "the layer was changed: "+d)
	}
	return nil
}

// temporaries finds writers' temporaries in the places they make them.
func temporaries(st *store.Store) []Problem {
	var out []Problem
	for _, top := range []string{".layers", ".flat"} {
		shards, _ := os.ReadDir(filepath.Join(st.Root, top))
		for _, s := range shards {
			dir := filepath.Join(st.Root, top, s.Name())
			if isTemp(s.Name()) {
				out = append(out, Problem{Path: rel(st, dir), What: "a temporary left behind"})
				continue
			}
			es, _ := os.ReadDir(dir)
			for _, e := range es {
				if isTemp(e.Name()) {
					out = append(out, Problem{Path: rel(st, filepath.Join(dir, e.Name())), What: "a temporary left behind"})
				}
			}
		}
	}
	return out
}

// Repair removes what the problems found damaged, so that converting the returned images
// again (by the names they were wished under) rebuilds it: a damaged layer goes, and with it
// the flat trees of every image that uses it (their files are the layer's); a damaged flat
// tree goes; each affected image loses its recorded manifest, so it is no longer "already
// converted". Stray temporaries are removed.
func Repair(st *store.Store, problems []Problem) (reconvert []string, err error) {
	images, err := Images(st)
	if err != nil {
		return nil, err
	}
	damagedLayers := map[string]bool{}
	affected := map[string]bool{}
	for _, p := range problems {
		switch {
		case p.Layer != "":
			damagedLayers[store.Hex(p.Layer)] = true
		case p.Image != "":
			affected[p.Image] = true
		default:
			if err := store.RemoveAll(filepath.Join(st.Root, p.Path)); err != nil {
				return nil, err
			}
		}
	}
	for _, img := range images {
		for _, l := range allLayers(img) {
			if damagedLayers[store.Hex(l)] {
				affected[img.Name] = true
			}
		}
	}
	for h := range damagedLayers {
		if err := store.RemoveAll(st.LayerDir(h)); err != nil {
			return nil, err
		}
	}
	for _, img := range images {
		if !affected[img.Name] {
			continue
		}
		rec, _ := ReadRecord(st, img.Name)
		if err := os.Remove(st.ManifestPath(img.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err := removeTrees(st, img); err != nil { // multiarch.go
			return nil, err
		}
		name := img.Name
		if rec != nil && rec.Image != "" {
			name = rec.Image
		}
		reconvert = append(reconvert, name)
	}
	slices.Sort(reconvert)
	return reconvert, nil
}
