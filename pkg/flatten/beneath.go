package flatten

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// dirFlags open a directory without following a symlink in the last component.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// noOpenat2 is set once the kernel said it has no openat2 (before Linux 5.6).
var noOpenat2 atomic.Bool

// errInvalidPath is wrapped by splitRel's error.
var errInvalidPath = errors.New("invalid path")

// splitRel checks a slash-separated path relative to the image root and returns its parent
// and last component. Paths come from layer metadata, so ".." and empty parts are refused.
func splitRel(rel string) (parent, base string, err error) {
	if rel == "" || strings.HasPrefix(rel, "/") {
		return "", "", fmt.Errorf("%w %q", errInvalidPath, rel)
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return "", "", fmt.Errorf("%w %q", errInvalidPath, rel)
		}
	}
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:], nil
	}
	return "", rel, nil
}

// openBeneath opens the directory rel ("" = the root itself) below root, refusing every
// symlink on the way, so that nothing is ever reached outside the tree being built.
func openBeneath(root int, rel string) (int, error) {
	if rel == "" {
		return unix.Openat(root, ".", dirFlags, 0)
	}
	if !noOpenat2.Load() {
		fd, err := unix.Openat2(root, rel, &unix.OpenHow{
			Flags:   dirFlags,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != unix.ENOSYS && err != unix.EPERM {
			return fd, err
		}
		// ENOSYS: old kernel; EPERM: a seccomp filter that refuses openat2.
		noOpenat2.Store(true)
	}
	return walkBeneath(root, rel)
}

// walkBeneath is openBeneath one component at a time, for kernels without openat2.
func walkBeneath(root int, rel string) (int, error) {
	fd, err := unix.Openat(root, ".", dirFlags, 0)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			unix.Close(fd)
			return -1, unix.EXDEV // what RESOLVE_BENEATH answers for an escape
		}
		next, err := unix.Openat(fd, c, dirFlags, 0)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// openParent opens the parent directory of rel below root and returns it with rel's last
// component. The caller closes the descriptor.
func openParent(root int, rel string) (int, string, error) {
	parent, base, err := splitRel(rel)
	if err != nil {
		return -1, "", err
	}
	fd, err := openBeneath(root, parent)
	if err != nil {
		return -1, "", fmt.Errorf("opening parent of %s: %w", rel, err)
	}
	return fd, base, nil
}
