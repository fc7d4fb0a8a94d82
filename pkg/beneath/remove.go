package beneath

import (
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// RemoveAt removes name in dir, recursively if it is a directory, and says whether it was
// one. It works by fd only: a symlink is removed itself, never followed, and nothing is
// opened but directories, with O_NOFOLLOW. Nothing is chmod'ed, so a directory that denies
// us writing keeps its entries (and fails with EACCES) unless we are root. A missing name is
// not an error.
func RemoveAt(dir int, name string) (wasDir bool, err error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	return removeAt(dir, name)
}

func removeAt(dir int, name string) (wasDir bool, err error) {
	err = unix.Unlinkat(dir, name, 0)
	if err == nil || err == unix.ENOENT {
		return false, nil
	}
	if err != unix.EISDIR {
		return false, err
	}
	fd, err := openAt(dir, name, Read)
	if err != nil {
		return true, err
	}
	d := os.NewFile(uintptr(fd), name)
	// All names first: removing while reading may make getdents skip entries.
	names, err := d.Readdirnames(-1)
	for _, n := range names {
		if err == nil {
			_, err = removeAt(fd, n)
		}
	}
	d.Close()
	if err != nil {
		return true, err
	}
	return true, unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

// RemoveChildren empties the directory dir, except the entry named keep ("" keeps none).
func RemoveChildren(dir int, keep string) error {
	names, err := ReadNames(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == keep {
			continue
		}
		if _, err := removeAt(dir, n); err != nil {
			return err
		}
	}
	return nil
}

// ReadNames lists the directory dir, sorted, so what is made from it is reproducible. It
// reads through a fresh open of "." so dir's own offset is left alone.
func ReadNames(dir int) ([]string, error) {
	fd, err := unix.Openat(dir, ".", dirFlags, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// RemoveAll removes rel, recursively, if it is there. A missing parent, or a symlink or
// non-directory on the way, means there is nothing to remove below the root: nothing is
// reached through a symlink.
func (r *Root) RemoveAll(rel string) error {
	dir, base, err := OpenParent(r.fd, rel, Path)
	if IsUnreachable(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing %s: %w", rel, err)
	}
	defer unix.Close(dir)
	if _, err := removeAt(dir, base); err != nil {
		return fmt.Errorf("removing %s: %w", rel, err)
	}
	return nil
}
