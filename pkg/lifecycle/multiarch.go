package lifecycle

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

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
