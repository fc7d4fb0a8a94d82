package treecmp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// Type is the kind of a tree entry.
type Type string

// Entry types.
const (
	File    Type = "file"
	Dir     Type = "dir"
	Symlink Type = "symlink"
	Char    Type = "char"
	Block   Type = "block"
	FIFO    Type = "fifo"
	Socket  Type = "socket"
)

// Entry describes one path of a tree.
type Entry struct {
	Type Type
	// Mode is the permission bits plus setuid (04000), setgid (02000) and
	// sticky (01000), as in chmod: e.g. 04755.
	Mode     uint32
	UID, GID uint32
	Size     int64  // regular files only
	SHA256   string // hex, regular files only
	Target   string // symlinks only, verbatim
	// Link is the hardlink group of a non-directory: the lexically smallest
	// walked path sharing its inode, when at least two walked paths do; ""
	// otherwise.
	Link string
	Rdev uint64 // char and block devices only
}

// Tree maps slash-separated paths relative to the walked root (the root
// itself is not included) to their entries.
type Tree map[string]Entry

// Walk records every path under root, never following symlinks. exclude, if
// not nil, is called with each relative path; true skips the path (and, for
// a directory, everything under it).
func Walk(root string, exclude func(rel string) bool) (Tree, error) {
	t := Tree{}
	type ino struct{ dev, ino uint64 }
	groups := map[ino][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if exclude != nil && exclude(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		e, st, err := entry(p)
		if err != nil {
			return err
		}
		if e.Type != Dir && st.Nlink > 1 {
			k := ino{uint64(st.Dev), st.Ino}
			groups[k] = append(groups[k], rel)
		}
		t[rel] = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		sort.Strings(g)
		for _, p := range g {
			e := t[p]
			e.Link = g[0]
			t[p] = e
		}
	}
	return t, nil
}

// entry describes the path p (lstat, not following symlinks).
func entry(p string) (Entry, *syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return Entry{}, nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	e := Entry{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		e.Type = File
		e.Size = st.Size
		sum, err := hashFile(p)
		if err != nil {
			return Entry{}, nil, err
		}
		e.SHA256 = sum
	case syscall.S_IFDIR:
		e.Type = Dir
	case syscall.S_IFLNK:
		e.Type = Symlink
		target, err := os.Readlink(p)
		if err != nil {
			return Entry{}, nil, err
		}
		e.Target = target
	case syscall.S_IFCHR:
		e.Type, e.Rdev = Char, uint64(st.Rdev)
	case syscall.S_IFBLK:
		e.Type, e.Rdev = Block, uint64(st.Rdev)
	case syscall.S_IFIFO:
		e.Type = FIFO
	case syscall.S_IFSOCK:
		e.Type = Socket
	default:
		return Entry{}, nil, fmt.Errorf("treecmp: %s: unknown file type %o", p, st.Mode&syscall.S_IFMT)
	}
	return e, &st, nil
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("treecmp: read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
