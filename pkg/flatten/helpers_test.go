package flatten

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/layer"
)

// layerFS builds a layerfs directory by hand, the way the extractor leaves one.
type layerFS struct {
	t      testing.TB
	root   string
	format layer.WhiteoutFormat
}

func newLayerFS(t testing.TB, format layer.WhiteoutFormat) *layerFS {
	t.Helper()
	root := filepath.Join(t.TempDir(), "layerfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return &layerFS{t: t, root: root, format: format}
}

func (l *layerFS) path(p string) string { return filepath.Join(l.root, filepath.FromSlash(p)) }

func (l *layerFS) check(err error) {
	l.t.Helper()
	if err != nil {
		l.t.Fatal(err)
	}
}

func (l *layerFS) parent(p string) {
	l.t.Helper()
	l.check(os.MkdirAll(filepath.Dir(l.path(p)), 0o755))
}

func (l *layerFS) file(p, content string, mode uint32) *layerFS {
	l.t.Helper()
	l.parent(p)
	l.check(os.WriteFile(l.path(p), []byte(content), 0o600))
	l.chmod(p, mode)
	return l
}

func (l *layerFS) dir(p string, mode uint32) *layerFS {
	l.t.Helper()
	l.check(os.MkdirAll(l.path(p), 0o755))
	l.chmod(p, mode)
	return l
}

// chmod takes Unix permission bits (0o4755 is setuid), unlike os.Chmod's os.FileMode.
func (l *layerFS) chmod(p string, mode uint32) *layerFS {
	l.t.Helper()
	l.check(unix.Chmod(l.path(p), mode))
	return l
}

func (l *layerFS) symlink(p, target string) *layerFS {
	l.t.Helper()
	l.parent(p)
	l.check(os.Symlink(target, l.path(p)))
	return l
}

func (l *layerFS) hardlink(p, existing string) *layerFS {
	l.t.Helper()
	l.parent(p)
	l.check(os.Link(l.path(existing), l.path(p)))
	return l
}

// whiteout marks p deleted, in the layer's format.
func (l *layerFS) whiteout(p string) *layerFS {
	l.t.Helper()
	l.parent(p)
	if l.format == layer.WhiteoutOverlay {
		l.check(unix.Mknod(l.path(p), unix.S_IFCHR, 0))
		return l
	}
	l.check(os.WriteFile(filepath.Join(filepath.Dir(l.path(p)), ".wh."+filepath.Base(p)), nil, 0o644))
	return l
}

// opaque marks the directory p opaque, in the layer's format.
func (l *layerFS) opaque(p string) *layerFS {
	l.t.Helper()
	l.check(os.MkdirAll(l.path(p), 0o755))
	if l.format == layer.WhiteoutOverlay {
		l.check(unix.Setxattr(l.path(p), layer.OpaqueXattr, []byte("y"), 0))
		return l
	}
	l.check(os.WriteFile(filepath.Join(l.path(p), ".wh..wh..opq"), nil, 0o644))
	return l
}

func (l *layerFS) chown(p string, uid, gid int) *layerFS {
	l.t.Helper()
	l.check(os.Lchown(l.path(p), uid, gid))
	return l
}

// mtime sets atime and mtime of p (not following a symlink); call after adding children.
func (l *layerFS) mtime(p string, t time.Time) *layerFS {
	l.t.Helper()
	ts := unix.NsecToTimespec(t.UnixNano())
	l.check(unix.UtimesNanoAt(unix.AT_FDCWD, l.path(p), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	return l
}

func (l *layerFS) layer(digest string, links ...layer.Link) Layer {
	return Layer{FS: l.root, Meta: &layer.Meta{Digest: digest, Whiteouts: l.format, Links: links}}
}

// build flattens layers into a fresh directory and fails the test on error.
func build(t testing.TB, layers ...Layer) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "flat")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(context.Background(), dst, layers, Options{}); err != nil {
		t.Fatalf("Build: %v", err)
	}
	return dst
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// formats are the whiteout formats to run a test with; overlay needs root (mknod, trusted.*).
func formats(t *testing.T, run func(t *testing.T, f layer.WhiteoutFormat)) {
	for _, f := range []layer.WhiteoutFormat{layer.WhiteoutOverlay, layer.WhiteoutOCI} {
		t.Run(string(f), func(t *testing.T) {
			if f == layer.WhiteoutOverlay {
				requireRoot(t)
			}
			run(t, f)
		})
	}
}

func content(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lstat(t testing.TB, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func wantContent(t testing.TB, p, want string) {
	t.Helper()
	if got := content(t, p); got != want {
		t.Errorf("%s: content %q, want %q", p, got, want)
	}
}

func wantAbsent(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("%s: want absent, got err %v", p, err)
	}
}

func wantType(t testing.TB, p string, typ uint32) {
	t.Helper()
	if got := lstat(t, p).Mode & unix.S_IFMT; got != typ {
		t.Errorf("%s: type %o, want %o", p, got, typ)
	}
}

// names lists a directory, to check nothing unexpected is in it.
func names(t testing.TB, p string) []string {
	t.Helper()
	des, err := os.ReadDir(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out
}

func closeFd(fd int) { _ = unix.Close(fd) }
