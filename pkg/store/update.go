package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// UpdateFileAtomic replaces the content of path with update(old), old being nil when path
// does not exist, as WriteFileAtomic writes. The read and the write happen under an exclusive
// flock of path's directory, so concurrent updates by several processes each see the one
// before: no lock file is left next to path. An update returning old unchanged (nil when
// there is no file) writes nothing.
func UpdateFileAtomic(path string, mode os.FileMode, update func(old []byte) ([]byte, error)) (changed bool, err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("creating %s: %w", dir, err)
	}
	prefix := ".tmp-" + filepath.Base(path) + "-"
	err = withDirLock(dir, func() error {
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		data, err := update(old)
		if err != nil {
			return err
		}
		if (old == nil) == (data == nil) && bytes.Equal(old, data) {
			return nil // unchanged, or still no file
		}
		// The live temporaries of WriteFileAtomic's writers are flocked: only dead ones go.
		cleanStale(dir, prefix)
		f, err := os.CreateTemp(dir, prefix)
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := replaceWith(f, path, data, mode); err != nil {
			return err
		}
		changed = true
		return nil
	})
	return changed, err
}
