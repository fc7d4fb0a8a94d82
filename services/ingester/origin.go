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
func addOrigin(st *store.Store, layerDigest, configDigest string) error {
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
	if slices.Contains(o.Origin, configDigest) {
		return nil
	}
	// Sorted, so the file depends on which images use the layer, not on which came first.
	o.Origin = append(o.Origin, configDigest)
	slices.Sort(o.Origin)
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = store.WriteFileAtomic(path, b, 0o644)
	return err
}
