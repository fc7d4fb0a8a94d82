package beneath

import (
	"fmt"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noOpenat2 is set once the kernel refused openat2: ENOSYS before Linux 5.6, EPERM from a
// seccomp filter that does not know it. Tests set it to exercise the walk.
var noOpenat2 atomic.Bool

const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openParent opens rel's parent directory below the root and returns it with rel's last
// component. The caller closes the fd.
func (r *Root) openParent(rel string) (dir int, base string, err error) {
	parent, base, err := split(rel)
	if err != nil {
		return -1, "", err
	}
	dir, err = r.openDir(parent)
	return dir, base, err
}

// openDir opens the directory dir ("" = the root) below the root. Every component must be a
// real directory: a symlink anywhere on the way fails with ELOOP, whatever it points at.
// dir has passed split (as a parent) already.
func (r *Root) openDir(dir string) (int, error) {
	if dir == "" {
		return unix.Openat(r.fd, ".", dirFlags, 0)
	}
	if !noOpenat2.Load() {
		fd, err := openat2(r.fd, dir)
		if err != unix.ENOSYS && err != unix.EPERM {
			return fd, wrapOpen(dir, err)
		}
		noOpenat2.Store(true)
	}
	fd, err := walk(r.fd, dir)
	return fd, wrapOpen(dir, err)
}

func wrapOpen(dir string, err error) error {
	if err != nil {
		return fmt.Errorf("opening directory %s: %w", dir, err)
	}
	return nil
}

// openat2 retries the EAGAIN the kernel returns when a concurrent rename races the lookup.
// RESOLVE_NO_SYMLINKS covers the last component too (ELOOP); O_NOFOLLOW would turn that
// into ENOTDIR, so it is left out here.
func openat2(fd int, dir string) (int, error) {
	how := unix.OpenHow{Flags: dirFlags &^ unix.O_NOFOLLOW, Resolve: resolveFlags}
	var err error
	for range 64 {
		var next int
		next, err = unix.Openat2(fd, dir, &how)
		if err != unix.EAGAIN && err != unix.EINTR {
			return next, err
		}
	}
	return -1, err
}

// walk is openat2 one component at a time with O_NOFOLLOW, for kernels without it.
func walk(root int, dir string) (int, error) {
	fd, err := unix.Openat(root, ".", dirFlags, 0)
	if err != nil {
		return -1, err
	}
	for c := range strings.SplitSeq(dir, "/") {
		next, err := unix.Openat(fd, c, dirFlags, 0)
		if err == unix.ENOTDIR && isSymlink(fd, c) {
			err = unix.ELOOP // what openat2 answers for a symlink on the way
		}
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

func isSymlink(dir int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}
