package relocate

import (
	"encoding/json"
	"fmt"
	"os"

	"flatbed.dev/pkg/store"
)

// Mapping is what a relocation did: each original image, as it was written, to its
// relocated reference with the digest copied, "registry/repository[:tag]@sha256:…". Its
// file is the JSON object of that map.
type Mapping map[string]string

// WriteFile writes m to path as a JSON object with sorted keys, through a temporary file and
// a rename, so a reader never sees part of it.
func (m Mapping) WriteFile(path string) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if _, err := store.WriteFileAtomic(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the relocation mapping: %w", err)
	}
	return nil
}

// ReadMapping reads a mapping file WriteFile (or duffle relocate) wrote.
func ReadMapping(path string) (Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Mapping
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("reading the relocation mapping %s: %w", path, err)
	}
	return m, nil
}
