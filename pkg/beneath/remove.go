package beneath

import (
	"os"

	"golang.org/x/sys/unix"
)

// removeAt removes name in dir, recursively if it is a directory. It works by fd only: a
// symlink is removed itself, never followed, and nothing is opened but directories, with
// O_NOFOLLOW. A missing name is not an error.
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
	d := os.NewFile(uintptr(fd), name)
	// All names first: removing while reading may make getdents skip entries.
	names, err := d.Readdirnames(-1)
	for _, n := range names {
		if err == nil {
			err = removeAt(fd, n)
		}
	}
	d.Close()
	if err != nil {
		return err
	}
	return unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
}
