package layer

import (
	"archive/tar"
	"cmp"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
)

// dirAttrs is what a directory entry asks for but cannot get until the end: adding children
// changes a directory's mtime, and a 0500 or 0000 directory would refuse children when not
// root.
type dirAttrs struct {
	mode  uint32
	times []unix.Timespec
}

// dir makes directory base (or keeps the one already there: a later entry for an existing
// directory only updates its metadata) and defers its mode and times.
func (x *extractor) dir(hdr *tar.Header, pfd int, base, rel string) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == unix.ENOENT:
	case err != nil:
		return fmt.Errorf("inspecting: %w", err)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
	default:
		if err := x.replace(pfd, base, rel); err != nil {
			return fmt.Errorf("replacing with a directory: %w", err)
		}
		err = unix.ENOENT
	}
	if err == unix.ENOENT {
		if err := beneath.Mkdirat(pfd, base, 0o755); err != nil {
			return fmt.Errorf("creating directory: %w", err)
		}
	}
	if err := x.chownAt(pfd, base, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	if len(hdr.PAXRecords) > 0 {
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening directory: %w", err)
		}
		x.setXattrsFd(fd, rel, hdr)
		unix.Close(fd)
	}
	x.dirs[rel] = dirAttrs{mode: perm(hdr), times: times(hdr)}
	delete(x.implicit, rel)
	return nil
}

// finishDirs applies the deferred directory modes and times, deepest first, so no chmod can
// block a later lookup and no later change touches an mtime already set. Directories removed
// since were dropped from x.dirs by replace.
func (x *extractor) finishDirs() error {
	paths := make([]string, 0, len(x.dirs))
	for p := range x.dirs {
		paths = append(paths, p)
	}
	slices.SortFunc(paths, func(a, b string) int {
		return cmp.Or(cmp.Compare(strings.Count(b, "/"), strings.Count(a, "/")), strings.Compare(a, b))
	})
	for _, p := range paths {
		if err := x.finishDir(p, x.dirs[p]); err != nil {
			return fmt.Errorf("setting metadata of directory %q: %w", p, err)
		}
	}
	return nil
}

func (x *extractor) finishDir(rel string, a dirAttrs) error {
	parent, base := splitRel(rel)
	pfd, err := x.openDir(parent, false)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("no longer a directory")
	}
	// Plain fchmodat follows symlinks, but base was just checked to be a directory in a
	// tree only this extraction writes to.
	if err := unix.Fchmodat(pfd, base, a.mode, 0); err != nil {
		return fmt.Errorf("changing mode: %w", err)
	}
	if err := unix.UtimesNanoAt(pfd, base, a.times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}
