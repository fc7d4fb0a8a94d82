package beneath

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Root is a directory tree, held by an fd, that paths are resolved beneath. Its methods but
// Close may be called concurrently; none of them ever leaves the tree or follows a symlink.
type Root struct {
	fd int
}

// OpenRoot opens the tree at path. path itself is trusted (it is ours, not the image's), but
// its last component must be a real directory, not a symlink.
func OpenRoot(path string) (*Root, error) {
	fd, err := unix.Open(path, dirFlags, 0)
	if err != nil {
		return nil, fmt.Errorf("opening root %s: %w", path, err)
	}
	return &Root{fd: fd}, nil
}

// Close releases the tree's fd.
func (r *Root) Close() error {
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}
