package flattener

import (
	"bytes"
	"errors"
	"io/fs"
	"os"

	"flatbed.dev/pkg/podman"
	"flatbed.dev/pkg/store"
)

// writes makes the flattener's changes to the store after the flat tree is built: the public
// and .multiarch symlinks, the metadata, the podman entry. A dry one writes nothing and only
// notes whether anything would change: an image whose every piece is in place already (a
// redelivered layer.ingested, the second of an image's layer.ingested events, a re-run that
// mended another image) needs no cvmfs_server transaction at all. Both run the same code
// (finish), so what the dry run compares is exactly what the real one would write.
type writes struct {
	dry     bool
	changed bool // dry: something would be written
}

// file writes data to path (unchanged content is left alone).
func (w *writes) file(path string, data []byte) error {
	if w.dry {
		old, err := os.ReadFile(path)
		w.changed = w.changed || err != nil || !bytes.Equal(old, data)
		return nil
	}
	_, err := store.WriteFileAtomic(path, data, 0o644)
	return err
}

// symlink makes path a symlink to target.
func (w *writes) symlink(target, path string) error {
	if w.dry {
		old, err := os.Readlink(path)
		w.changed = w.changed || err != nil || old != target
		return nil
	}
	_, err := store.SymlinkAtomic(target, path)
	return err
}

// remove removes path (and what is below it).
func (w *writes) remove(path string) error {
	if w.dry {
		_, err := os.Lstat(path)
		w.changed = w.changed || !errors.Is(err, fs.ErrNotExist)
		return nil
	}
	return store.RemoveAll(path)
}

// podman lists img in the repository's podman store.
func (w *writes) podman(repoRoot string, img podman.Image) error {
	if w.dry {
		w.changed = w.changed || !podman.Listed(repoRoot, img)
		return nil
	}
	return podman.Add(repoRoot, img)
}
