package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath/beneathtest"
)

// open makes a tree and opens its root; the root is closed when the test ends.
func open(t *testing.T) (*beneathtest.Tree, *Root) {
	t.Helper()
	tr := beneathtest.NewTree(t)
	r, err := OpenRoot(tr.Root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return tr, r
}

func lstat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// noTemp fails t if a temporary name was left in dir.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, ".beneath-*"))
	if len(names) > 0 {
		t.Errorf("temporary names left: %v", names)
	}
}

// overEach runs op on rel once for each hostile kind of entry put there first, and returns
// with the outside checked; then check looks at what op left at rel.
func overEach(t *testing.T, rel string, op func(*Root) error, check func(t *testing.T, p string, wasDir bool)) {
	for _, k := range beneathtest.Kinds() {
		t.Run(k.Name, func(t *testing.T) {
			tr, r := open(t)
			p := filepath.Join(tr.Root, filepath.FromSlash(rel))
			k.Make(t, tr, p)
			wasDir := lstat(t, p).IsDir()
			if err := beneathtest.Within(t, 5*time.Second, func() error { return op(r) }); err != nil {
				t.Fatal(err)
			}
			tr.CheckOutside(t)
			check(t, p, wasDir)
			noTemp(t, filepath.Dir(p))
		})
	}
}

func TestWriteFileReplaces(t *testing.T) {
	op := func(r *Root) error { return r.WriteFile("d/f", []byte("new"), 0o777) }
	overEach(t, "d/f", op, func(t *testing.T, p string, _ bool) {
		if got, want := lstat(t, p).Mode(), os.FileMode(0o777); got != want {
			t.Errorf("mode %v, want %v (a regular file, umask not applied)", got, want)
		}
		if got, _ := os.ReadFile(p); string(got) != "new" {
			t.Errorf("content %q, want %q", got, "new")
		}
	})
}

func TestSymlinkReplaceReplaces(t *testing.T) {
	op := func(r *Root) error { return r.SymlinkReplace("../../etc/passwd", "l") }
	overEach(t, "l", op, func(t *testing.T, p string, _ bool) {
		if got, err := os.Readlink(p); err != nil || got != "../../etc/passwd" {
			t.Errorf("link -> %q (%v), want ../../etc/passwd", got, err)
		}
	})
}

func TestMkdirReplaceReplaces(t *testing.T) {
	op := func(r *Root) error { return r.MkdirReplace("d/sub", 0o751) }
	overEach(t, "d/sub", op, func(t *testing.T, p string, wasDir bool) {
		fi := lstat(t, p)
		switch {
		case !fi.IsDir():
			t.Errorf("%v, want a directory", fi.Mode())
		case wasDir && fi.Mode() != os.ModeDir|0o755:
			t.Errorf("existing directory changed to %v", fi.Mode())
		case !wasDir && fi.Mode() != os.ModeDir|0o751:
			t.Errorf("mode %v, want %v", fi.Mode(), os.ModeDir|0o751)
		}
		if _, err := os.Lstat(filepath.Join(p, "sub", "out")); wasDir && err != nil {
			t.Errorf("existing directory not kept as it was: %v", err)
		}
	})
}

// Nothing below a symlink is reached, wherever it points: outside, dangling or inside.
func TestSymlinkOnTheWayRefused(t *testing.T) {
	links := map[string]func(tr *beneathtest.Tree) string{
		"outside":  func(tr *beneathtest.Tree) string { return tr.Outside },
		"relative": func(tr *beneathtest.Tree) string { return "../outside" },
		"dangling": func(tr *beneathtest.Tree) string { return filepath.Join(tr.Outside, "nowhere") },
		"inside":   func(tr *beneathtest.Tree) string { return "." },
	}
	for name, target := range links {
		for _, rel := range []string{"a/x", "d/a/x", "d/a/e/x"} {
			t.Run(name+" "+rel, func(t *testing.T) {
				tr, r := open(t)
				if err := os.MkdirAll(filepath.Join(tr.Root, "d"), 0o755); err != nil {
					t.Fatal(err)
				}
				for _, l := range []string{"a", "d/a"} {
					if err := os.Symlink(target(tr), filepath.Join(tr.Root, l)); err != nil {
						t.Fatal(err)
					}
				}
				for op, err := range ops(r, rel) {
					if !errors.Is(err, unix.ELOOP) {
						t.Errorf("%s: got %v, want ELOOP", op, err)
					} else if !strings.Contains(err.Error(), rel) {
						t.Errorf("%s: error %q does not name %s", op, err, rel)
					}
				}
				tr.CheckOutside(t)
			})
		}
	}
}

func TestInvalidPathRefused(t *testing.T) {
	_, r := open(t)
	for _, rel := range []string{"", "/etc/passwd", "..", "../x", "a/../b", ".", "./a", "a/.", "a//b", "a/", "a\x00b"} {
		for op, err := range ops(r, rel) {
			if !errors.Is(err, ErrInvalidPath) {
				t.Errorf("%s(%q): got %v, want ErrInvalidPath", op, rel, err)
			}
		}
	}
}

func TestParentNotADirectory(t *testing.T) {
	tr, r := open(t)
	if err := os.WriteFile(filepath.Join(tr.Root, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]error{"f/x": unix.ENOTDIR, "missing/x": unix.ENOENT} {
		for op, err := range ops(r, rel) {
			if !errors.Is(err, want) {
				t.Errorf("%s(%q): got %v, want %v", op, rel, err, want)
			}
		}
	}
}

func TestOpenRootRefusesSymlink(t *testing.T) {
	tr := beneathtest.NewTree(t)
	l := filepath.Join(tr.Root, "l")
	if err := os.Symlink(tr.Outside, l); err != nil {
		t.Fatal(err)
	}
	if r, err := OpenRoot(l); err == nil {
		r.Close()
		t.Error("opened a symlink as the root")
	}
}

// The same guarantees hold where openat2 is missing or refused, and parents are walked.
func TestWithoutOpenat2(t *testing.T) {
	t.Cleanup(WithoutOpenat2())
	t.Run("write", TestWriteFileReplaces)
	t.Run("symlink", TestSymlinkReplaceReplaces)
	t.Run("mkdir", TestMkdirReplaceReplaces)
	t.Run("symlink on the way", TestSymlinkOnTheWayRefused)
	t.Run("invalid", TestInvalidPathRefused)
	t.Run("parent", TestParentNotADirectory)
}

// ops runs every writing method on rel and returns their errors by name.
func ops(r *Root, rel string) map[string]error {
	return map[string]error{
		"WriteFile":      r.WriteFile(rel, []byte("x"), 0o644),
		"MkdirReplace":   r.MkdirReplace(rel, 0o755),
		"SymlinkReplace": r.SymlinkReplace("x", rel),
	}
}
