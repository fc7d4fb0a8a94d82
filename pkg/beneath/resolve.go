package beneath

import (
	"errors"
	"io/fs"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Access is what a directory fd opened by this package may be used for.
type Access int

const (
	// Read fds may also be listed, chmod'ed and have xattrs read and set (O_RDONLY).
	Read Access = unix.O_RDONLY
	// Path fds are only the base of *at calls (O_PATH): they need no read permission.
	Path Access = unix.O_PATH
)

// dirFlags open a directory without following a symlink in the last component.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// noOpenat2 is set once the kernel refused openat2: ENOSYS before Linux 5.6, EPERM from a
// seccomp filter that does not know it. WithoutOpenat2 sets it for tests.
var noOpenat2 atomic.Bool

// WithoutOpenat2 makes the package resolve paths one component at a time, as on kernels
// without openat2, until the returned function is called. It is for tests, which must show
// that the fallback keeps every guarantee; it affects the whole process.
func WithoutOpenat2() (restore func()) {
	saved := noOpenat2.Swap(true)
	return func() { noOpenat2.Store(saved) }
}

// OpenDir opens the directory rel ("" = dirfd's directory itself) below dirfd, for a. Every
// component must be a real directory: a symlink anywhere on the way fails with ELOOP,
// whatever it points at, and a file, fifo or device with ENOTDIR, without being opened.
func OpenDir(dirfd int, rel string, a Access) (int, error) {
	if rel == "" {
		return openAt(dirfd, ".", a)
	}
	if err := check(rel); err != nil {
		return -1, err
	}
	return openDir(dirfd, rel, a, nil)
}

// OpenParent opens rel's parent directory below dirfd, for a, and returns it with rel's
// last component. The caller closes the fd.
func OpenParent(dirfd int, rel string, a Access) (dir int, base string, err error) {
	parent, base, err := Split(rel)
	if err != nil {
		return -1, "", err
	}
	if parent == "" {
		dir, err = openAt(dirfd, ".", a)
	} else {
		dir, err = openDir(dirfd, parent, a, nil)
	}
	return dir, base, err
}

// openDir is OpenDir (or MkdirAll, with mk) for a checked, non-empty rel. openat2 answers
// in one call; where it fails for the tree's sake, the walk finds which component is in the
// way, or makes what is missing.
func openDir(dirfd int, rel string, a Access, mk *Mkdir) (int, error) {
	if !noOpenat2.Load() {
		fd, err := openat2(dirfd, rel, a)
		switch err {
		case nil:
			return fd, nil
		case unix.ENOENT, unix.ENOTDIR, unix.ELOOP:
		case unix.ENOSYS, unix.EPERM:
			noOpenat2.Store(true)
		default:
			return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
		}
	}
	return walk(dirfd, rel, a, mk)
}

// openat2 retries the EAGAIN the kernel returns when a concurrent rename races the lookup.
// RESOLVE_NO_SYMLINKS covers the last component too (ELOOP); O_NOFOLLOW would turn that
// into ENOTDIR, so it is left out here.
func openat2(dirfd int, rel string, a Access) (int, error) {
	how := unix.OpenHow{Flags: uint64(a) | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveFlags}
	var err error
	for range 64 {
		var fd int
		fd, err = unix.Openat2(dirfd, rel, &how)
		if err != unix.EAGAIN && err != unix.EINTR {
			return fd, err
		}
	}
	return -1, err
}

// openAt opens the directory name in dir without following it. A symlink there fails with
// ELOOP, as openat2 answers, not the ENOTDIR of O_NOFOLLOW|O_DIRECTORY.
func openAt(dir int, name string, a Access) (int, error) {
	fd, err := unix.Openat(dir, name, int(a)|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ENOTDIR && isSymlink(dir, name) {
		err = unix.ELOOP
	}
	return fd, err
}

// walk opens rel one component at a time, each relative to its parent's fd with
// O_NOFOLLOW|O_DIRECTORY: what openat2 does in one call, for kernels without it. The
// components on the way are opened O_PATH, needing search permission only, as a lookup does.
// A missing component is made by mk when mk is not nil (see MkdirAll).
func walk(dirfd int, rel string, a Access, mk *Mkdir) (int, error) {
	cur, done := dirfd, ""
	for rest := rel; ; {
		c, next, last := cut(rest)
		done = join(done, c)
		acc := Path
		if last {
			acc = a
		}
		fd, err := openAt(cur, c, acc)
		if mk != nil && err != nil {
			fd, err = mk.make(cur, c, done, acc, err)
		}
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: done, Err: err}
		}
		if last {
			return fd, nil
		}
		cur, rest = fd, next
	}
}

// cut splits the first component off a checked path.
func cut(rel string) (first, rest string, last bool) {
	first, rest, found := strings.Cut(rel, "/")
	return first, rest, !found
}

func isSymlink(dir int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

// IsUnreachable reports whether err says that a path leads nowhere below the root: it is
// missing, or runs below a symlink or a non-directory.
func IsUnreachable(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}
