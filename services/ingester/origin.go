package ingester

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"flatbed.dev/pkg/store"
)

// addOrigin records in .layers/xx/<d>/.metadata/origin.json that image config uses the layer
// (DUCC's back-links, used by garbage collection). Unchanged files are not rewritten.
// Several ingesters may add origins to one shared layer at once: the update holds a lock
// on the .metadata directory itself, so no lock file is published in the store.
func addOrigin(st *store.Store, layerDigest string, configDigests ...string) error {
	path := filepath.Join(st.LayerMeta(layerDigest), "origin.json")
	_, err := store.UpdateFileAtomic(path, 0o644, func(old []byte) ([]byte, error) {
		var o struct {
			Origin []string `json:"origin"`
		}
		if old != nil {
			if err := json.Unmarshal(old, &o); err != nil {
				return nil, fmt.Errorf("parsing %s: %w", path, err)
			}
		}
		n := len(o.Origin)
		for _, c := range configDigests {
			if !slices.Contains(o.Origin, c) {
				o.Origin = append(o.Origin, c)
			}
		}
		if len(o.Origin) == n {
			return old, nil
		}
		// Sorted, so the file depends on which images use the layer, not on which came first.
		slices.Sort(o.Origin)
		return json.Marshal(o)
	})
	if err != nil {
		return err
	}
	// Earlier versions locked "origin.json.lock", left in the published store.
	if err := os.Remove(path + ".lock"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the stale %s.lock: %w", path, err)
	}
	return nil
}

// readOrigins returns the images origin.json records for a layer (none when it has none).
func readOrigins(st *store.Store, layerDigest string) []string {
	var o struct {
		Origin []string `json:"origin"`
	}
	b, err := os.ReadFile(filepath.Join(st.LayerMeta(layerDigest), "origin.json"))
	if err != nil || json.Unmarshal(b, &o) != nil {
		return nil
	}
	return o.Origin
}
