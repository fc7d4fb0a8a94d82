package beneathtest

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Sentinel is the file in Tree.Outside that hostile symlinks point at.
const Sentinel = "sentinel"

// Tree is a root for the image's tree and, beside it, a directory Outside that nothing
// working in Root may change.
type Tree struct {
	Root, Outside string
	base, before  string
}

// NewTree makes an empty Root and an Outside holding Sentinel, with an old mtime so a write
// through would show even within the same second.
func NewTree(t testing.TB) *Tree {
	t.Helper()
	base := t.TempDir()
	tr := &Tree{Root: filepath.Join(base, "root"), Outside: filepath.Join(base, "outside"), base: base}
	for _, d := range []string{tr.Root, tr.Outside} {
		check(t, os.Mkdir(d, 0o755))
	}
	s := filepath.Join(tr.Outside, Sentinel)
	check(t, os.WriteFile(s, []byte("outside, not to be touched\n"), 0o644))
	old := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	check(t, os.Chtimes(s, old, old))
	check(t, os.Chtimes(tr.Outside, old, old))
	tr.before = tr.snapshot(t)
	return tr
}

// CheckOutside fails t if anything beside Root changed since NewTree: a file written, made,
// removed, or only touched.
func (tr *Tree) CheckOutside(t testing.TB) {
	t.Helper()
	if got := tr.snapshot(t); got != tr.before {
		t.Errorf("outside the root changed:\nbefore:\n%s\nafter:\n%s", tr.before, got)
	}
}

// snapshot lists every entry beside Root with its type, mode, mtime and content.
func (tr *Tree) snapshot(t testing.TB) string {
	t.Helper()
	var b []byte
	err := filepath.WalkDir(tr.base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == tr.Root {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var sum [32]byte
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = sha256.Sum256(data)
		}
		b = fmt.Appendf(b, "%s %v %d %x\n", p, fi.Mode(), fi.ModTime().UnixNano(), sum[:4])
		return nil
	})
	check(t, err)
	return string(b)
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
