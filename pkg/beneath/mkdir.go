package beneath

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MkdirReplace makes rel a real directory with mode (exactly: the umask does not apply). A
// directory already there is kept as it is, with its content and mode; anything else there
// (a symlink, file, fifo, device or socket) is removed, never followed. rel's parent must
// exist.
func (r *Root) MkdirReplace(rel string, mode os.FileMode) error {
	if err := r.mkdirReplace(rel, mode); err != nil {
		return fmt.Errorf("making directory %s: %w", rel, err)
	}
	return nil
}

func (r *Root) mkdirReplace(rel string, mode os.FileMode) error {
	dir, base, err := r.openParent(rel)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	err = unix.Mkdirat(dir, base, 0o700)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err := unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return nil
		}
		if err := unix.Unlinkat(dir, base, 0); err != nil {
			return fmt.Errorf("removing what is in the way: %w", err)
		}
		err = unix.Mkdirat(dir, base, 0o700)
	}
	if err != nil {
		return err
	}
	fd, err := unix.Openat(dir, base, dirFlags, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fchmod(fd, unixMode(mode))
}
