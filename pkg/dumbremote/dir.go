package dumbremote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"flatbed.dev/pkg/store"
)

// dirBackend keeps the keys as files below root; a key is written to a temporary name next
// to it and renamed (store.WriteStreamAtomic).
type dirBackend struct{ root string }

// path is where key lives. Keys are made by this package from digests and validated image
// names, so they never climb out of root; path checks it all the same.
func (d dirBackend) path(key string) (string, error) {
	p := filepath.Join(d.root, filepath.FromSlash(key))
	if !strings.HasPrefix(p, d.root+string(filepath.Separator)) || slices.Contains(strings.Split(key, "/"), "..") {
		return "", fmt.Errorf("key %q is outside the remote %s", key, d.root)
	}
	return p, nil
}

func (d dirBackend) exists(_ context.Context, key string) (bool, error) {
	p, err := d.path(key)
	if err != nil {
		return false, err
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return fi.Mode().IsRegular(), nil
}

func (d dirBackend) get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, errNotFound)
	}
	return f, err
}

func (d dirBackend) put(_ context.Context, key string, r io.Reader, _ int64) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	return store.WriteStreamAtomic(p, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

func (d dirBackend) list(_ context.Context, prefix string) ([]string, error) {
	base, err := d.path(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return nil, err
	}
	var keys []string
	err = filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".tmp-") {
			return nil // temporaries of writers (live or dead) are not keys
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		keys = append(keys, filepath.ToSlash(rel))
		return nil
	})
	return keys, err
}

func (d dirBackend) remove(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// sweep has nothing to do: a directory's temporaries are flock'ed by their writers, and the
// next writer of the same name removes a dead one's (store.WriteStreamAtomic).
func (d dirBackend) sweep(context.Context, time.Duration) (int, error) { return 0, nil }
