package beneath

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath/beneathtest"
)

// bothWays runs test once resolving with openat2 and once with the component walk that
// replaces it on kernels without openat2.
func bothWays(t *testing.T, test func(t *testing.T)) {
	t.Run("openat2", func(t *testing.T) {
		if noOpenat2.Load() {
			t.Log("this kernel refuses openat2: both runs walk")
		}
		test(t)
	})
	t.Run("walk", func(t *testing.T) {
		t.Cleanup(WithoutOpenat2())
		test(t)
	})
}

// helper is one exported operation of the package on a path below the root, returning the
// fd it opened (or -1).
type helper struct {
	name string
	run  func(r *Root, rel string) (int, error)
}

func noFd(err error) (int, error) { return -1, err }

var helpers = []helper{
	{"OpenDir Read", func(r *Root, rel string) (int, error) { return OpenDir(r.fd, rel, Read) }},
	{"OpenDir Path", func(r *Root, rel string) (int, error) { return OpenDir(r.fd, rel, Path) }},
	{"OpenParent", func(r *Root, rel string) (int, error) {
		fd, _, err := OpenParent(r.fd, rel+"/x", Read)
		return fd, err
	}},
	{"MkdirAll", func(r *Root, rel string) (int, error) { return MkdirAll(r.fd, rel+"/new", Path, Mkdir{Mode: 0o755}) }},
	{"Root.MkdirAll", func(r *Root, rel string) (int, error) { return noFd(r.MkdirAll(rel+"/new", 0o755)) }},
	{"WriteFile", func(r *Root, rel string) (int, error) { return noFd(r.WriteFile(rel+"/f", []byte("x"), 0o644)) }},
	{"SymlinkReplace", func(r *Root, rel string) (int, error) { return noFd(r.SymlinkReplace("x", rel+"/l")) }},
	{"MkdirReplace", func(r *Root, rel string) (int, error) { return noFd(r.MkdirReplace(rel+"/d", 0o755)) }},
}

// Through each hostile entry on the way every helper fails, naming the entry, with the
// error openat2 gives: ELOOP for a symlink (whatever it points at), ENOTDIR for a fifo
// (never opened: the call returns at once). Outside stays untouched.
func TestHostileOnTheWay(t *testing.T) {
	ways := []struct {
		name string
		make func(t *testing.T, tr *beneathtest.Tree)
		rel  string
		want error
	}{
		{"symlink component to the directory outside", func(t *testing.T, tr *beneathtest.Tree) {
			mk(t, os.Symlink(tr.Outside, filepath.Join(tr.Root, "d", "out")))
		}, "d/out", unix.ELOOP},
		{"relative symlink component to outside", func(t *testing.T, tr *beneathtest.Tree) {
			mk(t, os.Symlink("../../outside", filepath.Join(tr.Root, "d", "out")))
		}, "d/out", unix.ELOOP},
		{"symlink component to a directory inside", func(t *testing.T, tr *beneathtest.Tree) {
			mk(t, os.Mkdir(filepath.Join(tr.Root, "d", "real"), 0o755))
			mk(t, os.Symlink("real", filepath.Join(tr.Root, "d", "out")))
		}, "d/out", unix.ELOOP},
		{"fifo in the way", func(t *testing.T, tr *beneathtest.Tree) {
			mk(t, unix.Mkfifo(filepath.Join(tr.Root, "d", "out"), 0o644))
		}, "d/out", unix.ENOTDIR},
		{"file in the way", func(t *testing.T, tr *beneathtest.Tree) {
			mk(t, os.WriteFile(filepath.Join(tr.Root, "d", "out"), nil, 0o644))
		}, "d/out", unix.ENOTDIR},
	}
	bothWays(t, func(t *testing.T) {
		for _, w := range ways {
			for _, h := range helpers {
				t.Run(w.name+"/"+h.name, func(t *testing.T) {
					tr, r := open(t)
					mk(t, os.Mkdir(filepath.Join(tr.Root, "d"), 0o755))
					w.make(t, tr)
					err := beneathtest.Within(t, 5*time.Second, func() error {
						fd, err := h.run(r, w.rel)
						if err == nil && fd >= 0 {
							unix.Close(fd)
						}
						return err
					})
					var pe *os.PathError
					switch {
					case !errors.Is(err, w.want):
						t.Errorf("got %v, want %v", err, w.want)
					case !errors.As(err, &pe) || pe.Path != w.rel:
						t.Errorf("error %v does not name the component %s", err, w.rel)
					}
					tr.CheckOutside(t)
				})
			}
		}
	})
}

// A symlink as the final component is never followed: opening it as a directory fails,
// removing it removes the link, and the writers replace it (see TestWriteFileReplaces).
func TestSymlinkAsFinalComponent(t *testing.T) {
	bothWays(t, func(t *testing.T) {
		tr, r := open(t)
		l := filepath.Join(tr.Root, "l")
		mk(t, os.Symlink(tr.Outside, l))
		for _, a := range []Access{Read, Path} {
			if fd, err := OpenDir(r.fd, "l", a); !errors.Is(err, unix.ELOOP) {
				t.Errorf("OpenDir(l, %d): %d, %v; want ELOOP", a, fd, err)
			}
		}
		if fd, err := MkdirAll(r.fd, "l", Path, Mkdir{Mode: 0o755}); !errors.Is(err, unix.ELOOP) {
			t.Errorf("MkdirAll(l): %d, %v; want ELOOP", fd, err)
		}
		if err := r.MkdirAll("l", 0o755); !errors.Is(err, unix.ELOOP) {
			t.Errorf("Root.MkdirAll(l): %v; want ELOOP", err)
		}
		if err := r.RemoveAll("l"); err != nil {
			t.Errorf("RemoveAll(l): %v", err)
		}
		if _, err := os.Lstat(l); !os.IsNotExist(err) {
			t.Errorf("the link is still there: %v", err)
		}
		tr.CheckOutside(t)
	})
}

// RemoveAll and RemoveAt remove what is in the way itself, never what it leads to; below
// a symlink or a fifo there is nothing to remove.
func TestRemoveHostile(t *testing.T) {
	bothWays(t, func(t *testing.T) {
		for _, k := range beneathtest.Kinds() {
			t.Run(k.Name, func(t *testing.T) {
				tr, r := open(t)
				p := filepath.Join(tr.Root, "d", "x")
				k.Make(t, tr, p)
				if err := beneathtest.Within(t, 5*time.Second, func() error { return r.RemoveAll("d/x/sentinel") }); err != nil {
					t.Errorf("RemoveAll below it: %v", err)
				}
				if err := beneathtest.Within(t, 5*time.Second, func() error { return r.RemoveAll("d/x") }); err != nil {
					t.Fatalf("RemoveAll: %v", err)
				}
				if _, err := os.Lstat(p); !os.IsNotExist(err) {
					t.Errorf("still there: %v", err)
				}
				tr.CheckOutside(t)
			})
		}
	})
}

// MkdirAll makes what is missing with the exact mode, tells Made, keeps what exists, and
// replaces a non-directory on the way only where Replace says so.
func TestMkdirAll(t *testing.T) {
	bothWays(t, func(t *testing.T) {
		tr, r := open(t)
		mk(t, os.MkdirAll(filepath.Join(tr.Root, "a"), 0o711))
		mk(t, unix.Mkfifo(filepath.Join(tr.Root, "a", "fifo"), 0o644))
		mk(t, os.Symlink(tr.Outside, filepath.Join(tr.Root, "a", "link")))
		var made, asked []string
		mkdir := Mkdir{
			Mode:    0o750,
			Made:    func(rel string) { made = append(made, rel) },
			Replace: func(rel string) bool { asked = append(asked, rel); return rel == "a/fifo" || rel == "a/link" },
		}
		for _, rel := range []string{"a/b/c", "a/fifo/x", "a/link/y"} {
			err := beneathtest.Within(t, 5*time.Second, func() error {
				fd, err := MkdirAll(r.fd, rel, Path, mkdir)
				if err == nil {
					unix.Close(fd)
				}
				return err
			})
			if err != nil {
				t.Fatalf("MkdirAll(%s): %v", rel, err)
			}
		}
		want := []string{"a/b", "a/b/c", "a/fifo", "a/fifo/x", "a/link", "a/link/y"}
		if !slices.Equal(made, want) {
			t.Errorf("made %v, want %v", made, want)
		}
		if !slices.Equal(asked, []string{"a/fifo", "a/link"}) {
			t.Errorf("Replace asked for %v", asked)
		}
		for _, p := range want {
			if fi := lstat(t, filepath.Join(tr.Root, p)); fi.Mode() != os.ModeDir|0o750 {
				t.Errorf("%s: %v, want %v", p, fi.Mode(), os.ModeDir|0o750)
			}
		}
		if fi := lstat(t, filepath.Join(tr.Root, "a")); fi.Mode() != os.ModeDir|0o711 {
			t.Errorf("existing a changed to %v", fi.Mode())
		}
		tr.CheckOutside(t)
	})
}

// '..' and the other non-plain paths are refused by every helper before any system call,
// also where they would stay inside ("a/../a").
func TestDotDotRefused(t *testing.T) {
	bothWays(t, func(t *testing.T) {
		tr, r := open(t)
		mk(t, os.Mkdir(filepath.Join(tr.Root, "a"), 0o755))
		for _, rel := range []string{"..", "../outside", "a/../..", "a/../a", "a/..", "/", "a//b", "./a"} {
			for _, h := range helpers {
				if fd, err := h.run(r, rel); !errors.Is(err, ErrInvalidPath) {
					t.Errorf("%s(%q): %d, %v; want ErrInvalidPath", h.name, rel, fd, err)
				}
			}
			if err := r.RemoveAll(rel); !errors.Is(err, ErrInvalidPath) {
				t.Errorf("RemoveAll(%q): %v; want ErrInvalidPath", rel, err)
			}
		}
		for _, name := range []string{"..", ".", "", "a/b", "a/.."} {
			if _, err := RemoveAt(r.fd, name); !errors.Is(err, ErrInvalidPath) {
				t.Errorf("RemoveAt(%q): %v; want ErrInvalidPath", name, err)
			}
			if err := Mkdirat(r.fd, name, 0o755); !errors.Is(err, ErrInvalidPath) {
				t.Errorf("Mkdirat(%q): %v; want ErrInvalidPath", name, err)
			}
		}
		tr.CheckOutside(t)
	})
}

func mk(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
