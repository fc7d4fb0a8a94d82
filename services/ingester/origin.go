package ingester

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/gofrs/flock"

	"flatbed.dev/pkg/store"
)

// addOrigin records in .layers/xx/<d>/.metadata/origin.json that image config uses the layer
// (DUCC's back-links, used by garbage collection). Unchanged files are not rewritten.
func addOrigin(st *store.Store, layerDigest string, configDigests ...string) error {
	dir := st.LayerMeta(layerDigest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	path := filepath.Join(dir, "origin.json")
	// Several ingesters may add origins to one shared layer at once.
	lock := flock.New(path + ".lock")
	if err := lock.Lock(); err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	defer lock.Unlock()
	var o struct {
		Origin []string `json:"origin"`
	}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &o); err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
	}
	n := len(o.Origin)
	for _, c := range configDigests {
		if !slices.Contains(o.Origin, c) {
			o.Origin = append(o.Origin, c)
		}
	}
	if len(o.Origin) == n {
		return nil
	}
	// Sorted, so the file depends on which images use the layer, not on which came first.
	slices.Sort(o.Origin)
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = store.WriteFileAtomic(path, b, 0o644)
	return err
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
