package beneath

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Mkdir says how MkdirAll makes the directories missing on the way.
type Mkdir struct {
	// Mode is each new directory's mode, exactly (the umask does not apply).
	Mode os.FileMode
	// Made, if not nil, is told the path of each directory made.
	Made func(rel string)
	// Replace, if not nil, says whether the non-directory found on the way at rel (a
	// symlink, file, fifo, device or socket) is removed and a directory made in its place.
	// Without it, or when it says no, a symlink fails with ELOOP and anything else with
	// ENOTDIR, as OpenDir answers.
	Replace func(rel string) bool
}

// MkdirAll opens the directory rel ("" = dirfd's directory itself) below dirfd for a, first
// making every directory missing on the way as mk says. Nothing on the way is followed or
// opened but directories. A directory MkdirAll makes is returned opened for Read even
// when a asks for Path.
func MkdirAll(dirfd int, rel string, a Access, mk Mkdir) (int, error) {
	if rel == "" {
		return openAt(dirfd, ".", a)
	}
	if err := check(rel); err != nil {
		return -1, err
	}
	return openDir(dirfd, rel, a, &mk)
}

// make is walk's answer to err, from opening the component name (at rel) in dir.
func (mk *Mkdir) make(dir int, name, rel string, a Access, err error) (int, error) {
	switch err {
	case unix.ENOENT:
	case unix.ENOTDIR, unix.ELOOP:
		if mk.Replace == nil || !mk.Replace(rel) {
			return -1, err
		}
		if err := unix.Unlinkat(dir, name, 0); err != nil && err != unix.ENOENT {
			return -1, fmt.Errorf("removing what is in the way: %w", err)
		}
	default:
		return -1, err
	}
	fd, err := mkdirOpen(dir, name, mk.Mode)
	if err == unix.EEXIST { // made meanwhile by someone else
		return openAt(dir, name, a)
	}
	if err == nil && mk.Made != nil {
		mk.Made(rel)
	}
	return fd, err
}

// Mkdirat makes the directory name in dir with mode, exactly (the umask does not apply).
// Something already at name fails with EEXIST.
func Mkdirat(dir int, name string, mode os.FileMode) error {
	if err := checkName(name); err != nil {
		return err
	}
	fd, err := mkdirOpen(dir, name, mode)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// mkdirOpen makes the directory name in dir and returns it opened for Read, with mode. It is
// made owner-only, then opened without following and chmod'ed by fd, so the mode lands on
// the directory just made, whatever may replace it by name meanwhile.
func mkdirOpen(dir int, name string, mode os.FileMode) (int, error) {
	if err := unix.Mkdirat(dir, name, 0o700); err != nil {
		return -1, err
	}
	fd, err := openAt(dir, name, Read)
	if err != nil {
		return -1, err
	}
	if err := unix.Fchmod(fd, unixMode(mode)); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

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
	dir, base, err := OpenParent(r.fd, rel, Path)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	fd, err := mkdirOpen(dir, base, mode)
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
		fd, err = mkdirOpen(dir, base, mode)
	}
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// MkdirAll makes rel and the directories missing on the way with mode (exactly). Existing
// directories are kept as they are; a symlink on the way fails with ELOOP and any other
// non-directory with ENOTDIR, as OpenDir answers.
func (r *Root) MkdirAll(rel string, mode os.FileMode) error {
	fd, err := MkdirAll(r.fd, rel, Path, Mkdir{Mode: mode})
	if err != nil {
		return fmt.Errorf("making directory %s: %w", rel, err)
	}
	return unix.Close(fd)
}
