package layer

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
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

// openDir returns a directory fd of rel ("" = root) below the root, for *at calls, resolved
// by pkg/beneath: no symlink on the way is followed, nor anything left. With create,
// missing directories are made 0755 as tar implementations do, and an overlay whiteout made
// earlier by this layer is replaced (an entry of the same layer wins over its whiteout).
// A symlink or non-directory on the way is an error naming that component.
func (x *extractor) openDir(rel string, create bool) (int, error) {
	var fd int
	var err error
	if create {
		fd, err = beneath.MkdirAll(x.root, rel, beneath.Path, beneath.Mkdir{
			Mode:    0o755,
			Made:    func(p string) { x.implicit[p] = struct{}{} },
			Replace: x.unwhiteout,
		})
	} else {
		fd, err = beneath.OpenDir(x.root, rel, beneath.Path)
	}
	if err == nil {
		return fd, nil
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return -1, fmt.Errorf("opening directory %s: %w", rel, err)
	}
	switch {
	case pe.Err == unix.ELOOP:
		return -1, fmt.Errorf("%w: parent %s is a symlink (not followed): %w", ErrUnsafe, pe.Path, pe.Err)
	case pe.Err == unix.ENOTDIR:
		// Only the layer's own entries are in the tree: it uses one of its non-directories
		// as a directory. Like a bad tar stream, that is the image's fault (permanent) once
		// the blob is shown to match its digest, else a bad download.
		x.badTar = true
		return -1, fmt.Errorf("parent %s is not a directory: %w", pe.Path, pe.Err)
	}
	return -1, fmt.Errorf("opening directory %s: %w", pe.Path, pe.Err)
}

// unwhiteout says whether the non-directory in the way at p is an overlay whiteout this
// layer made, which a directory of the same layer replaces, and forgets it if so.
func (x *extractor) unwhiteout(p string) bool {
	if !x.isWhiteout(p) {
		return false
	}
	delete(x.whiteouts, p)
	return true
}
