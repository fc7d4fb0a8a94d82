package flatten

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// skipXattr reports xattrs that are not image content: overlayfs markers are layer-store
// bookkeeping, and SELinux labels belong to the host (umoci ignores them too).
func skipXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || name == "security.selinux"
}

// copyXattrsFd copies the xattrs of the open file src to dst. Best effort: file systems and
// privileges differ (only root may set trusted.*, some file systems have no xattrs at all).
func (a *applier) copyXattrsFd(src, dst int, path string) {
	names := listXattrs(func(b []byte) (int, error) { return unix.Flistxattr(src, b) })
	for _, n := range names {
		v, err := getXattr(func(b []byte) (int, error) { return unix.Fgetxattr(src, n, b) })
		if err == nil {
			err = unix.Fsetxattr(dst, n, v, 0)
		}
		if err != nil {
			a.b.log.Debug("xattr not copied", "layer", a.name, "path", path, "xattr", n, "err", err)
		}
	}
}

// copyXattrsPath copies xattrs of name in the directory src to name in dst without opening the
// entry itself, through /proc/self/fd so no path outside the two directories is walked.
func (a *applier) copyXattrsPath(src, dst int, name, path string) {
	s, d := fdPath(src, name), fdPath(dst, name)
	names := listXattrs(func(b []byte) (int, error) { return unix.Llistxattr(s, b) })
	for _, n := range names {
		v, err := getXattr(func(b []byte) (int, error) { return unix.Lgetxattr(s, n, b) })
		if err == nil {
			err = unix.Lsetxattr(d, n, v, 0)
		}
		if err != nil {
			a.b.log.Debug("xattr not copied", "layer", a.name, "path", path, "xattr", n, "err", err)
		}
	}
}

// clearXattrsFd removes the xattrs a lower layer gave a directory the upper layer redefines,
// so that only the upper layer's set remains, as when a tar entry overwrites a directory.
func clearXattrsFd(fd int) {
	for _, n := range listXattrs(func(b []byte) (int, error) { return unix.Flistxattr(fd, b) }) {
		_ = unix.Fremovexattr(fd, n)
	}
}

func fdPath(dir int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dir) + "/" + name
}

// listXattrs returns the xattr names list reports, minus the skipped ones; none on error.
func listXattrs(list func([]byte) (int, error)) []string {
	buf, err := getXattr(list)
	if err != nil || len(buf) == 0 {
		return nil
	}
	var names []string
	for _, n := range strings.Split(strings.TrimRight(string(buf), "\x00"), "\x00") {
		if n != "" && !skipXattr(n) {
			names = append(names, n)
		}
	}
	return names
}

// getXattr calls get with a buffer large enough, asking for the size first; the value may
// grow in between, hence the retry on ERANGE.
func getXattr(get func([]byte) (int, error)) ([]byte, error) {
	for range 4 {
		size, err := get(nil)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			return []byte{}, nil
		}
		buf := make([]byte, size)
		n, err := get(buf)
		if err == unix.ERANGE {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	return nil, unix.ERANGE
}
