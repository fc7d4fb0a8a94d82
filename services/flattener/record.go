package flattener

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"flatbed.dev/events"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/store"
)

// record writes .metadata/<name>/flatbed.json: the image as wished (what `verify --repair`
// converts again), what the flat tree holds (what `verify` compares it with) and the digests
// of its manifest and index (what the resolver compares a HEAD with). The tree is counted
// when it was just built, or when this name has no count yet; the count is returned.
func record(st *store.Store, img events.Image, wished, flat string, built bool, w *writes) (layer.Tally, error) {
	return recordAt(st.MetadataDir(img.Name), img, wished, flat, built, w)
}

// recordAt writes the record of img into the metadata directory dir (.metadata/<name>, or a
// platform's .metadata/.multiarch/<dir>/<name>) through w.
func recordAt(dir string, img events.Image, wished, flat string, built bool, w *writes) (layer.Tally, error) {
	var old *lifecycle.Record
	if b, err := os.ReadFile(filepath.Join(dir, lifecycle.RecordFile)); err == nil {
		if json.Unmarshal(b, &old) != nil {
			old = nil // unreadable: written anew
		}
	}
	rec := lifecycle.Record{Image: wished, ManifestDigest: img.Digest, IndexDigest: img.IndexDigest, Platform: img.Platform}
	switch {
	case !built && old != nil && old.Flat != nil:
		rec.Flat = old.Flat
	case w.dry:
		w.changed = true // counted and recorded by the real run
		return layer.Tally{}, nil
	default:
		t, err := layer.Count(flat)
		if err != nil {
			return layer.Tally{}, fmt.Errorf("recording the flat tree of %s: %w", img.Name, err)
		}
		rec.Flat = &t
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return layer.Tally{}, err
	}
	return *rec.Flat, w.file(filepath.Join(dir, lifecycle.RecordFile), b)
}

// recordConfig keeps the raw image config next to the recorded manifest, for what reads the
// store without a registry (create-podman-store).
func recordConfig(st *store.Store, name string, config []byte) error {
	_, err := store.WriteFileAtomic(filepath.Join(st.MetadataDir(name), lifecycle.ConfigFile), config, 0o644)
	return err
}
