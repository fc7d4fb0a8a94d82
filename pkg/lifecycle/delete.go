package lifecycle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"flatbed.dev/pkg/podman"
	"flatbed.dev/pkg/store"
)

// Delete takes the image name (registry/repository:tag or @digest) out of the store: its
// public path, its recorded manifest and its podman entry. Its layers and flat tree stay until
// garbage collection finds no other image uses them. With dryRun nothing changes; the
// returned paths (relative to the repository) are what is, or would be, removed.
func Delete(st *store.Store, name string, dryRun bool) ([]string, error) {
	if err := store.CheckName(name); err != nil {
		return nil, fmt.Errorf("image %q: %w", name, err)
	}
	var removed []string
	public, meta := st.PublicPath(name), st.MetadataDir(name)
	if fi, err := os.Lstat(public); err == nil {
		if fi.Mode()&fs.ModeSymlink == 0 {
			return nil, fmt.Errorf("public path %s is not a symlink: not flatbed's, left alone", public)
		}
		removed = append(removed, name)
	}
	if _, err := os.Lstat(meta); err == nil {
		removed = append(removed, filepath.ToSlash(filepath.Join(".metadata", name)))
	}
	// A multi-arch image's platforms: their links and records (multiarch.go).
	plats, err := platformPaths(st, name)
	if err != nil {
		return nil, err
	}
	for _, p := range plats {
		removed = append(removed, rel(st, p))
	}
	names, err := podman.Names(st.Root)
	if err != nil {
		return nil, err
	}
	inPodman := false
	for _, n := range names {
		inPodman = inPodman || n == name
	}
	if inPodman {
		removed = append(removed, podman.Dir+" entry "+name)
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("image %s is not in the store %s", name, st.Root)
	}
	if dryRun {
		return removed, nil
	}
	// The recorded manifest goes first: without it the image is no longer "converted", so a
	// delete cut short is finished by the next conversion or delete, never half-visible.
	if err := store.RemoveAll(meta); err != nil {
		return nil, fmt.Errorf("removing %s: %w", meta, err)
	}
	if err := os.Remove(public); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("removing %s: %w", public, err)
	}
	if err := removePlatforms(st, plats); err != nil {
		return nil, err
	}
	if inPodman {
		if err := podman.Remove(st.Root, name); err != nil {
			return nil, err
		}
	}
	pruneEmpty(st.Root, filepath.Dir(public))
	pruneEmpty(filepath.Join(st.Root, ".metadata"), filepath.Dir(meta))
	return removed, nil
}

// pruneEmpty removes dir and its parents up to (not including) top while they are empty.
func pruneEmpty(top, dir string) {
	for dir != top && len(dir) > len(top) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
