package flatten

import (
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// removeAt removes name in dir, recursively if it is a directory. A symlink is removed itself,
// never followed. A missing name is not an error.
func removeAt(dir int, name string) error {
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return err
	}
	fd, err := unix.Openat(dir, name, dirFlags, 0)
	if err != nil {
		return err
	}
	err = removeChildren(fd, "")
	unix.Close(fd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}

// removeChildren empties the directory fd, except the entry named keep.
func removeChildren(fd int, keep string) error {
	names, err := readNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if n == keep {
			continue
		}
		if err := removeAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

// readNames lists the directory fd, sorted so builds are reproducible. It reads through a
// fresh open of "." so fd's own offset is left alone.
func readNames(fd int) ([]string, error) {
	d, err := unix.Openat(fd, ".", dirFlags, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(d), ".")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}
