package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ReadManifestConfig returns the config digest named by a stored manifest.json.
func ReadManifestConfig(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("parsing %s: %w", path, err)
	}
	return m.Config.Digest, nil
}

// WriteFileAtomic writes data to path through a temporary file and a rename, so readers see
// the old or the new content, never a part. If path already holds data nothing is written
// (changed is false): unchanged files keep their inode and mtime.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (changed bool, err error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return false, nil
	}
	f, err := lockedTemp(path)
	if err != nil {
		return false, err
	}
	return true, replaceWith(f, path, data, mode)
}

// lockedTemp creates a temporary file next to path, locked for as long as it is open, after
// removing those a dead writer of path left behind.
func lockedTemp(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	prefix := ".tmp-" + filepath.Base(path) + "-"
	var f *os.File
	err := withDirLock(dir, func() error {
		cleanStale(dir, prefix)
		var err error
		if f, err = os.CreateTemp(dir, prefix); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			os.Remove(f.Name())
			return fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		return nil
	})
	return f, err
}

// replaceWith writes data to the temporary f, then renames it to path, and closes it.
func replaceWith(f *os.File, path string, data []byte, mode os.FileMode) error {
	return replaceFrom(f, path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, mode)
}

// replaceFrom writes to the temporary f with write, then renames it to path, and closes it.
// When write fails, f is removed and path left as it was.
func replaceFrom(f *os.File, path string, write func(io.Writer) error, mode os.FileMode) error {
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	// Renamed while still open, so the lock covers the temporary until it has its final name.
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// SymlinkAtomic makes path a symlink to target, replacing what was there in one rename.
// An identical link is left alone.
func SymlinkAtomic(target, path string) (changed bool, err error) {
	if old, err := os.Readlink(path); err == nil && old == target {
		return false, nil
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("creating %s: %w", dir, err)
	}
	prefix := ".tmp-" + filepath.Base(path) + "-link-"
	var tmp string
	err = withDirLock(dir, func() error {
		cleanStale(dir, prefix)
		var err error
		if tmp, err = os.MkdirTemp(dir, prefix); err != nil {
			return err
		}
		if err := lockTemp(tmp); err != nil {
			os.Remove(tmp)
			return err
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	defer RemoveAll(tmp)
	l := filepath.Join(tmp, "l")
	if err := os.Symlink(target, l); err != nil {
		return false, fmt.Errorf("linking %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return false, fmt.Errorf("public path %s is a directory, not a symlink: remove it or choose another name", path)
	}
	if err := os.Rename(l, path); err != nil {
		return false, fmt.Errorf("linking %s: %w", path, err)
	}
	return true, nil
}
