package flatten

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
	"flatbed.dev/pkg/layer"
)

func TestSymlinksVerbatim(t *testing.T) {
	targets := map[string]string{
		"abs":      "/usr/lib",
		"rel":      "../lib/libc.so.6",
		"dangling": "does/not/exist",
		"above":    "../../../../../../etc/shadow",
		"self":     "self",
		"dot":      ".",
	}
	l := newLayerFS(t, layer.WhiteoutOCI).dir("lib", 0o755)
	for name, target := range targets {
		l.symlink("lib/"+name, target)
	}
	dst := build(t, l.layer("sha256:l1"))
	for name, want := range targets {
		p := dst + "/lib/" + name
		wantType(t, p, unix.S_IFLNK)
		if got, err := os.Readlink(p); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", name, got, err, want)
		}
	}
}

// A later layer writing below a name that is a symlink in dst must never write through it.
func TestNoWriteThroughSymlinks(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "foo"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := names(t, outside)

	formats(t, func(t *testing.T, f layer.WhiteoutFormat) {
		l1 := newLayerFS(t, f).
			symlink("lib", outside).                 // absolute, to a real directory outside dst
			symlink("up", "../../../../.."+outside). // relative, climbing out of dst
			symlink("etc", outside).
			file("keep", "k", 0o644)
		l2 := newLayerFS(t, f).
			file("lib/foo", "inside", 0o644).dir("lib/sub", 0o755).
			file("up/foo", "inside too", 0o644).
			whiteout("etc/foo"). // a whiteout below a symlink only removes the symlink's shadow
			opaque("etc")
		dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2"))

		wantContent(t, filepath.Join(outside, "foo"), "outside")
		if got := names(t, outside); !slices.Equal(got, before) {
			t.Errorf("outside directory now holds %v, want %v", got, before)
		}
		wantType(t, dst+"/lib", unix.S_IFDIR)
		wantContent(t, dst+"/lib/foo", "inside")
		wantType(t, dst+"/up", unix.S_IFDIR)
		wantContent(t, dst+"/up/foo", "inside too")
		wantType(t, dst+"/etc", unix.S_IFDIR)
	})
}

// A symlink replacing a lower directory removes the directory, not what the link points at.
func TestSymlinkReplacesDir(t *testing.T) {
	l1 := newLayerFS(t, layer.WhiteoutOCI).file("lib/x", "x", 0o644)
	l2 := newLayerFS(t, layer.WhiteoutOCI).symlink("lib", "usr/lib").file("usr/lib/y", "y", 0o644)
	dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2"))
	wantType(t, dst+"/lib", unix.S_IFLNK)
	wantContent(t, dst+"/lib/y", "y") // read through the link: fine once built
	wantAbsent(t, dst+"/usr/lib/x")
}

// The same guarantees hold on kernels without openat2, where parents are walked one by one.
func TestWithoutOpenat2(t *testing.T) {
	t.Cleanup(beneath.WithoutOpenat2())
	t.Run("symlinks", TestNoWriteThroughSymlinks)
	t.Run("links", TestMetaLinks)
	t.Run("link errors", TestMetaLinkErrors)
	t.Run("modes", TestModesAndOwners)
}
