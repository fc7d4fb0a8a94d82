package flatten

import (
	"fmt"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
)

// inode identifies a file of a layerfs, to find hard-link groups within a layer.
type inode struct{ dev, ino uint64 }

// applier copies one layer into dst.
type applier struct {
	b      *builder
	l      Layer
	name   string           // layer name for errors
	inodes map[inode]string // layerfs inode -> dst path of its first copy
	keep   string           // entry of the dst root an opaque root must not remove
	// implicit are the layer's directories that had no tar entry (layer.Meta.ImplicitDirs):
	// their layerfs metadata is made up, so a lower directory keeps its own.
	implicit map[string]bool
}

// join makes the dst-relative path of name in the directory rel.
func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

func (a *applier) errf(path, op string, err error) error {
	if path == "" {
		path = "/"
	}
	return fmt.Errorf("layer %s: %s %s: %w", a.name, op, path, err)
}

// dir applies the layerfs directory src onto the dst directory dst, both at path rel: first
// this layer's opaque marker and whiteouts (they hide lower layers only), then its entries.
func (a *applier) dir(src, dst int, rel string) error {
	names, err := beneath.ReadNames(src)
	if err != nil {
		return a.errf(rel, "reading layer directory", err)
	}
	c, err := classify(src, rel, a.l.Meta.Whiteouts, names)
	if err != nil {
		return fmt.Errorf("layer %s: %w", a.name, err)
	}
	if c.opaque {
		keep := ""
		if rel == "" {
			keep = a.keep
		}
		if err := beneath.RemoveChildren(dst, keep); err != nil {
			return a.errf(rel, "emptying opaque directory", err)
		}
		a.b.stats.Whiteouts++
	}
	for _, w := range c.whiteouts {
		if _, err := beneath.RemoveAt(dst, w); err != nil {
			return a.errf(join(rel, w), "removing whited-out", err)
		}
		a.b.stats.Whiteouts++
	}
	for _, e := range c.entries {
		if err := a.b.ctx.Err(); err != nil {
			return err
		}
		if err := a.entry(src, dst, rel, e); err != nil {
			return err
		}
	}
	return nil
}

// entry copies one child of a layerfs directory, replacing whatever dst has under that name
// unless both are directories (those merge).
func (a *applier) entry(src, dst int, rel string, e entry) error {
	path := join(rel, e.name)
	var cur unix.Stat_t
	exists := true
	if err := unix.Fstatat(dst, e.name, &cur, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if !isNotExist(err) {
			return a.errf(path, "stat", err)
		}
		exists = false
	}
	isDir := e.st.Mode&unix.S_IFMT == unix.S_IFDIR
	if exists && !(isDir && cur.Mode&unix.S_IFMT == unix.S_IFDIR) {
		// Type changes and replaced files: the lower entry goes entirely, and a symlink is
		// removed itself (a layer's "lib/" replaces a lower "lib -> /usr/lib").
		if _, err := beneath.RemoveAt(dst, e.name); err != nil {
			return a.errf(path, "replacing", err)
		}
		exists = false
	}
	if isDir {
		return a.subdir(src, dst, path, e, exists)
	}
	// Files of one layer sharing an inode become one hard-link group in dst, linked to the
	// first copy (never to the layerfs inode, which belongs to the layer store).
	key := inode{dev: e.st.Dev, ino: e.st.Ino}
	if e.st.Nlink > 1 {
		if first, ok := a.inodes[key]; ok {
			if err := linkBeneath(a.b.root, first, dst, e.name); err != nil {
				return a.errf(path, fmt.Sprintf("hard-linking to %s", first), err)
			}
			a.b.stats.Hardlinks++
			return nil
		}
	}
	if err := a.nonDir(src, dst, path, e); err != nil {
		return a.errf(path, "copying", err)
	}
	if e.st.Nlink > 1 {
		a.inodes[key] = path
	}
	return nil
}

// subdir creates or merges the directory e and applies its contents.
func (a *applier) subdir(src, dst int, path string, e entry, exists bool) error {
	if !exists {
		// Owner-only until finishDirs: a 0000 or 0500 directory must not block later writes.
		if err := unix.Mkdirat(dst, e.name, 0o700); err != nil {
			return a.errf(path, "creating directory", err)
		}
	}
	a.b.stats.Dirs++
	s, err := beneath.OpenDir(src, e.name, beneath.Read)
	if err != nil {
		return a.errf(path, "opening layer directory", err)
	}
	defer unix.Close(s)
	d, err := beneath.OpenDir(dst, e.name, beneath.Read)
	if err != nil {
		return a.errf(path, "opening directory", err)
	}
	defer unix.Close(d)
	if !exists || !a.implicit[path] {
		if err := a.dirMeta(s, d, path); err != nil {
			return err
		}
	}
	return a.dir(s, d, path)
}

// dirMeta gives the dst directory dst the owner and xattrs of the layerfs directory src now,
// and records its mode and times for finishDirs. The upper layer's metadata wins on a merge.
func (a *applier) dirMeta(src, dst int, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return a.errf(path, "stat layer directory", err)
	}
	if a.b.priv {
		if err := unix.Fchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return a.errf(path, "chown", err)
		}
	}
	clearXattrsFd(dst)
	a.copyXattrsFd(src, dst, path)
	a.b.dirs[path] = dirMeta{mode: st.Mode & 0o7777, atime: st.Atim, mtime: st.Mtim}
	return nil
}
