package layer

import (
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// cleanName maps a tar name (or hard-link target) to a path relative to the layer root:
// leading "/" are stripped, "." and empty components dropped. A ".." component is refused
// with ErrUnsafe wherever it is (also "a/../b", which would stay inside), as GNU tar and
// bsdtar refuse such members: lexical cleaning could map "../../etc/x" to "etc/x", but a
// layer that names paths that way is hostile or broken, not something to guess at.
// "" means the root itself.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: name contains a NUL byte", ErrUnsafe)
	}
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: name has a \"..\" component", ErrUnsafe)
		}
	}
	return strings.TrimPrefix(path.Clean("/"+name), "/"), nil
}

// splitRel splits a cleaned relative path into its parent ("" for the root) and base name.
func splitRel(rel string) (dir, base string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

func joinRel(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// resolveFlags make the kernel refuse, rather than follow, any symlink on the way, and refuse
// to leave the directory fd it starts from: a layer cannot redirect writes anywhere else,
// whatever it created before.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openat2 opens p below dirfd with resolveFlags, retrying the EAGAIN the kernel may return
// when a concurrent rename races the lookup.
func openat2(dirfd int, p string, flags uint64) (int, error) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolveFlags}
	var err error
	for range 64 {
		var fd int
		fd, err = unix.Openat2(dirfd, p, &how)
		if err != unix.EAGAIN && err != unix.EINTR {
			return fd, err
		}
	}
	return -1, err
}

const dirPathFlags = unix.O_PATH | unix.O_DIRECTORY

// openDir returns an O_PATH fd of directory rel ("" = root) below the root. With create,
// missing directories are made 0755 as tar implementations do, and an overlay whiteout made
// earlier by this layer is replaced (an entry of the same layer wins over its whiteout).
// A symlink or non-directory on the way is an error naming that component.
func (x *extractor) openDir(rel string, create bool) (int, error) {
	if rel == "" {
		rel = "."
	}
	fd, err := openat2(x.root, rel, dirPathFlags)
	if err == nil {
		return fd, nil
	}
	if err != unix.ENOENT && err != unix.ENOTDIR && err != unix.ELOOP {
		return -1, fmt.Errorf("opening directory %s: %w", rel, err)
	}
	return x.walkDir(rel, create)
}

// walkDir resolves rel one component at a time, so it can create what is missing and say
// which component is in the way.
func (x *extractor) walkDir(rel string, create bool) (int, error) {
	cur, err := openat2(x.root, ".", dirPathFlags)
	if err != nil {
		return -1, fmt.Errorf("opening layer root: %w", err)
	}
	done := ""
	for c := range strings.SplitSeq(rel, "/") {
		p := joinRel(done, c)
		next, err := openat2(cur, c, dirPathFlags)
		if err == unix.ENOTDIR && create && x.isWhiteout(p) {
			if err = unix.Unlinkat(cur, c, 0); err == nil {
				delete(x.whiteouts, p)
				err = unix.ENOENT
			}
		}
		if err == unix.ENOENT && create {
			if err = mkdirat(cur, c, 0o755); err == nil {
				x.implicit[p] = struct{}{}
			}
			if err == nil || err == unix.EEXIST {
				next, err = openat2(cur, c, dirPathFlags)
			}
		}
		unix.Close(cur)
		switch {
		case err == unix.ELOOP:
			return -1, fmt.Errorf("%w: parent %s is a symlink (not followed): %w", ErrUnsafe, p, err)
		case err == unix.ENOTDIR:
			return -1, fmt.Errorf("parent %s is not a directory: %w", p, err)
		case err != nil:
			return -1, fmt.Errorf("opening directory %s: %w", p, err)
		}
		cur, done = next, p
	}
	return cur, nil
}

// mkdirat makes a directory with exactly mode (the umask would otherwise narrow it).
func mkdirat(dirfd int, name string, mode uint32) error {
	if err := unix.Mkdirat(dirfd, name, mode); err != nil {
		return err
	}
	return unix.Fchmodat(dirfd, name, mode, 0)
}
