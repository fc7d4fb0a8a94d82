package flatten

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
)

// dirMeta is what a directory gets only once all layers are applied: creating children
// changes a directory's mtime, and a 0000 or 0500 mode would block writing them.
type dirMeta struct {
	mode         uint32
	atime, mtime unix.Timespec
}

// finishDirs sets the recorded modes and times deepest first, so that setting a directory
// never disturbs one already finished, and the way down stays writable to the end.
// Records of directories a later layer removed or replaced by a non-directory are skipped.
func (b *builder) finishDirs() error {
	paths := make([]string, 0, len(b.dirs))
	for p := range b.dirs {
		paths = append(paths, p)
	}
	depth := func(p string) int {
		if p == "" {
			return -1
		}
		return strings.Count(p, "/")
	}
	slices.SortFunc(paths, func(x, y string) int {
		return cmp.Or(cmp.Compare(depth(y), depth(x)), cmp.Compare(x, y))
	})
	for _, p := range paths {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		if err := b.finishDir(p, b.dirs[p]); err != nil {
			if p == "" {
				p = "/"
			}
			return fmt.Errorf("finishing directory %s: %w", p, err)
		}
	}
	return nil
}

func (b *builder) finishDir(p string, m dirMeta) error {
	fd, err := beneath.OpenDir(b.root, p, beneath.Read)
	switch {
	case err == nil:
	case beneath.IsUnreachable(err):
		return nil // gone, or no longer a directory
	default:
		return err
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, m.mode); err != nil {
		return err
	}
	// "." relative to the directory's own descriptor is the directory itself.
	return unix.UtimesNanoAt(fd, ".", []unix.Timespec{m.atime, m.mtime}, 0)
}
