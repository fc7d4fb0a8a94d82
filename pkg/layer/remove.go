package layer

import (
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// replace removes whatever this layer put at base (rel is its path) so a later entry with the
// same name can take its place: in a tar the last entry for a name wins. A directory goes
// with its whole tree, and with the bookkeeping (deferred directory metadata, whiteouts,
// cross-layer links) of everything below it.
func (x *extractor) replace(pfd int, base, rel string) error {
	wasDir, err := removeAt(pfd, base)
	if err != nil {
		return err
	}
	x.forget(rel, wasDir)
	return nil
}

// removeAt removes base below dirfd without following symlinks; it recurses into directories
// by fd, never by path. Nothing is chmod'ed: directories keep their creation mode until the
// end of the extraction, so they are writable by us. A missing base is not an error.
func removeAt(dirfd int, base string) (wasDir bool, err error) {
	err = unix.Unlinkat(dirfd, base, 0)
	if err == nil || err == unix.ENOENT {
		return false, nil
	}
	if err != unix.EISDIR {
		return false, err
	}
	fd, err := unix.Openat(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return true, err
	}
	d := os.NewFile(uintptr(fd), base)
	defer d.Close()
	// Read all names first: removing while reading may make getdents skip entries.
	names, err := d.Readdirnames(-1)
	if err != nil {
		return true, err
	}
	for _, n := range names {
		if _, err := removeAt(fd, n); err != nil {
			return true, err
		}
	}
	return true, unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR)
}

// forget drops the bookkeeping of rel (and, for a removed directory, of everything below it).
func (x *extractor) forget(rel string, tree bool) {
	delete(x.dirs, rel)
	delete(x.whiteouts, rel)
	delete(x.implicit, rel)
	x.forgetLink(rel)
	if !tree {
		return
	}
	prefix := rel + "/"
	for p := range x.dirs {
		if strings.HasPrefix(p, prefix) {
			delete(x.dirs, p)
		}
	}
	for p := range x.whiteouts {
		if strings.HasPrefix(p, prefix) {
			delete(x.whiteouts, p)
		}
	}
	for p := range x.implicit {
		if strings.HasPrefix(p, prefix) {
			delete(x.implicit, p)
		}
	}
	if len(x.linkPaths) > 0 {
		x.meta.Links = removeLinks(x.meta.Links, func(l Link) bool { return strings.HasPrefix(l.Path, prefix) }, x.linkPaths)
	}
}

// forgetLink drops a recorded cross-layer link at rel: a later entry of the same name wins.
func (x *extractor) forgetLink(rel string) {
	if _, ok := x.linkPaths[rel]; ok {
		x.meta.Links = removeLinks(x.meta.Links, func(l Link) bool { return l.Path == rel }, x.linkPaths)
	}
}

func removeLinks(links []Link, drop func(Link) bool, index map[string]struct{}) []Link {
	out := links[:0]
	for _, l := range links {
		if drop(l) {
			delete(index, l.Path)
			continue
		}
		out = append(out, l)
	}
	return out
}
