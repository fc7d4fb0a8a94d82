package beneathtest

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Hostile is one kind of entry an image may leave at a path.
type Hostile struct {
	Name string
	// Make puts the entry at path inside tr.Root, making the parents it needs. It skips t
	// where the process may not make device nodes.
	Make func(t testing.TB, tr *Tree, path string)
}

// Kinds are every entry an image can put in the way of a file, a symlink or a directory.
func Kinds() []Hostile {
	return []Hostile{
		{"absolute symlink to a file outside", func(t testing.TB, tr *Tree, p string) {
			symlink(t, filepath.Join(tr.Outside, Sentinel), p)
		}},
		{"relative symlink to a file outside", func(t testing.TB, tr *Tree, p string) {
			symlink(t, relative(t, p, filepath.Join(tr.Outside, Sentinel)), p)
		}},
		{"dangling symlink to outside", func(t testing.TB, tr *Tree, p string) {
			symlink(t, filepath.Join(tr.Outside, "made-through-a-link"), p)
		}},
		{"absolute symlink to the directory outside", func(t testing.TB, tr *Tree, p string) {
			symlink(t, tr.Outside, p)
		}},
		{"relative symlink to the directory outside", func(t testing.TB, tr *Tree, p string) {
			symlink(t, relative(t, p, tr.Outside), p)
		}},
		{"hard link to the file outside", func(t testing.TB, tr *Tree, p string) {
			parent(t, p)
			check(t, os.Link(filepath.Join(tr.Outside, Sentinel), p))
		}},
		{"fifo", fifo},
		{"character device 1:3", device(unix.S_IFCHR, 1, 3)},
		{"character device 0:0", device(unix.S_IFCHR, 0, 0)},
		{"socket", device(unix.S_IFSOCK, 0, 0)},
		{"regular file", func(t testing.TB, tr *Tree, p string) {
			parent(t, p)
			check(t, os.WriteFile(p, []byte("the image's\n"), 0o600))
		}},
		{"directory holding a symlink out", func(t testing.TB, tr *Tree, p string) {
			check(t, os.MkdirAll(filepath.Join(p, "sub"), 0o755))
			check(t, os.Symlink(tr.Outside, filepath.Join(p, "sub", "out")))
			check(t, os.Symlink(filepath.Join(tr.Outside, Sentinel), filepath.Join(p, "file")))
		}},
	}
}

func parent(t testing.TB, p string) {
	t.Helper()
	check(t, os.MkdirAll(filepath.Dir(p), 0o755))
}

func symlink(t testing.TB, target, p string) {
	t.Helper()
	parent(t, p)
	check(t, os.Symlink(target, p))
}

// relative is target as a symlink at p names it: "../../outside/…".
func relative(t testing.TB, p, target string) string {
	t.Helper()
	rel, err := filepath.Rel(filepath.Dir(p), target)
	check(t, err)
	return rel
}

// fifo makes a fifo at p. A writer that opens it blocks for a reader; the cleanup is that
// reader, so a test that found the block can still end.
func fifo(t testing.TB, _ *Tree, p string) {
	t.Helper()
	parent(t, p)
	check(t, unix.Mkfifo(p, 0o644))
	t.Cleanup(func() {
		if fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
	})
}

func device(kind uint32, major, minor uint32) func(testing.TB, *Tree, string) {
	return func(t testing.TB, _ *Tree, p string) {
		t.Helper()
		parent(t, p)
		err := unix.Mknod(p, kind|0o666, int(unix.Mkdev(major, minor)))
		if err == unix.EPERM {
			t.Skip("not permitted to make device nodes")
		}
		check(t, err)
	}
}
