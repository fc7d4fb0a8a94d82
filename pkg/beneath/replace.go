package beneath

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"golang.org/x/sys/unix"
)

// replace puts a new entry at rel in one rename: create makes it at a free temporary name in
// rel's parent, and renameat moves it over whatever is at rel. A rename replaces a symlink,
// fifo or device entry itself, without following or opening it; a directory in the way is
// removed first. Readers see the old entry or the new one, never a half-written file.
func (r *Root) replace(rel string, create func(dir int, tmp string) error) error {
	dir, base, err := OpenParent(r.fd, rel, Path)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	tmp, err := createTemp(dir, create)
	if err != nil {
		return err
	}
	err = unix.Renameat(dir, tmp, dir, base)
	if err == unix.EISDIR || err == unix.ENOTEMPTY || err == unix.EEXIST {
		if _, err = removeAt(dir, base); err != nil {
			err = fmt.Errorf("removing the directory in the way: %w", err)
		} else {
			err = unix.Renameat(dir, tmp, dir, base)
		}
	}
	if err != nil {
		_ = unix.Unlinkat(dir, tmp, 0)
		return err
	}
	return nil
}

// createTemp calls create with names until one is free. create must fail with EEXIST,
// rather than follow or reuse, when the name is taken (O_CREAT|O_EXCL, symlinkat).
func createTemp(dir int, create func(dir int, tmp string) error) (string, error) {
	for range 16 {
		tmp := fmt.Sprintf(".beneath-%016x", rand.Uint64())
		err := create(dir, tmp)
		if err == nil {
			return tmp, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			_ = unix.Unlinkat(dir, tmp, 0) // what create made before failing, if anything
			return "", err
		}
	}
	return "", fmt.Errorf("no free temporary name: %w", unix.EEXIST)
}
