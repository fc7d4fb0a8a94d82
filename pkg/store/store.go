package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Store is one repository root, e.g. /cvmfs/unpacked.cern.ch or DIR/<cvmfs_repo>.
type Store struct {
	Root string
}

// New returns the store rooted at root. It does not touch the disk.
func New(root string) *Store { return &Store{Root: filepath.Clean(root)} }

// Hex returns the hex part of a digest ("sha256:ab…" or "ab…").
func Hex(digest string) string {
	if i := strings.IndexByte(digest, ':'); i >= 0 {
		return digest[i+1:]
	}
	return digest
}

func shard(hex string) string {
	if len(hex) < 2 {
		return "__"
	}
	return hex[:2]
}

// LayersDir is .layers.
func (s *Store) LayersDir() string { return filepath.Join(s.Root, ".layers") }

// LayerDir is .layers/<d[0:2]>/<d>, d the hex of the compressed layer digest.
func (s *Store) LayerDir(digest string) string {
	h := Hex(digest)
	return filepath.Join(s.Root, ".layers", shard(h), h)
}

// LayerFS is the unpacked layer: .layers/<xx>/<d>/layerfs.
func (s *Store) LayerFS(digest string) string { return filepath.Join(s.LayerDir(digest), "layerfs") }

// LayerMeta is .layers/<xx>/<d>/.metadata.
func (s *Store) LayerMeta(digest string) string {
	return filepath.Join(s.LayerDir(digest), ".metadata")
}

// HasLayer reports whether the layer was published (its directory appears only by an atomic rename).
func (s *Store) HasLayer(digest string) bool {
	fi, err := os.Stat(s.LayerFS(digest))
	return err == nil && fi.IsDir()
}

// FlatDir is .flat/<c[0:2]>/<c>, c the hex of the config digest.
func (s *Store) FlatDir(configDigest string) string {
	h := Hex(configDigest)
	return filepath.Join(s.Root, ".flat", shard(h), h)
}

// HasFlat reports whether the flat root file system of the image was published.
func (s *Store) HasFlat(configDigest string) bool {
	fi, err := os.Stat(s.FlatDir(configDigest))
	return err == nil && fi.IsDir()
}

// ImageName is "<registry>/<repository>:<tag>" or "<registry>/<repository>@<digest>" (no scheme).
func ImageName(registry, repository, tag, digest string) string {
	if tag != "" {
		return registry + "/" + repository + ":" + tag
	}
	return registry + "/" + repository + "@" + digest
}

// MetadataDir is .metadata/<registry>/<repository>:<tag>.
func (s *Store) MetadataDir(name string) string {
	return filepath.Join(s.Root, ".metadata", filepath.FromSlash(name))
}

// ManifestPath is .metadata/<registry>/<repository>:<tag>/manifest.json.
func (s *Store) ManifestPath(name string) string {
	return filepath.Join(s.MetadataDir(name), "manifest.json")
}

// PublicPath is the user-facing symlink <registry>/<repository>:<tag>.
func (s *Store) PublicPath(name string) string {
	return filepath.Join(s.Root, filepath.FromSlash(name))
}

// TempDir makes a fresh temporary directory next to final (same file system, so a rename
// publishes it atomically). Its name starts with ".tmp-" and never collides with a final name.
func (s *Store) TempDir(final string) (string, error) {
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", parent, err)
	}
	prefix := ".tmp-" + filepath.Base(final) + "-"
	var dir string
	err := withDirLock(parent, func() error {
		cleanStale(parent, prefix)
		var err error
		if dir, err = os.MkdirTemp(parent, prefix); err != nil {
			return fmt.Errorf("creating temporary directory in %s: %w", parent, err)
		}
		if err := lockTemp(dir); err != nil {
			_ = os.Remove(dir)
			return fmt.Errorf("locking %s: %w", dir, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	// MkdirTemp makes 0700; published trees are read by every client.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// Publish renames the finished temporary directory tmp to final. If final already exists
// (another worker won the race, or an earlier run finished it) tmp is removed and won is false:
// the existing copy is kept, never half-replaced.
func (s *Store) Publish(tmp, final string) (won bool, err error) {
	defer releaseTemp(tmp)
	// One syncfs for the whole finished tree, not an fsync per file: what appears under a
	// final name after a crash is complete.
	if err := syncFS(tmp); err != nil {
		return false, fmt.Errorf("syncing %s: %w", tmp, err)
	}
	err = os.Rename(tmp, final)
	if err == nil {
		return true, syncDir(filepath.Dir(final))
	}
	if errors.Is(err, os.ErrExist) || errors.Is(err, errNotEmpty) {
		if rmErr := RemoveAll(tmp); rmErr != nil {
			return false, fmt.Errorf("discarding %s after losing the race: %w", tmp, rmErr)
		}
		return false, nil
	}
	return false, fmt.Errorf("publishing %s: %w", final, err)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	_ = f.Sync() // best effort: some file systems refuse fsync on directories
	return nil
}

func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}
