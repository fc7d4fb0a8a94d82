package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

var errNotEmpty = syscall.ENOTEMPTY

// RemoveAll is os.RemoveAll that first makes directories writable, so trees holding
// 0000 or read-only directories (which images do carry) can be discarded.
func RemoveAll(path string) error {
	defer releaseTemp(path)
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}
