package flatten

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/layer"
)

func TestFileReplacedAcrossLayers(t *testing.T) {
	formats(t, func(t *testing.T, f layer.WhiteoutFormat) {
		l1 := newLayerFS(t, f).file("etc/conf", "old", 0o644).file("etc/keep", "keep", 0o644)
		l2 := newLayerFS(t, f).file("etc/conf", "new content", 0o600)
		dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2"))
		wantContent(t, dst+"/etc/conf", "new content")
		wantContent(t, dst+"/etc/keep", "keep")
		if got := lstat(t, dst+"/etc/conf").Mode & 0o7777; got != 0o600 {
			t.Errorf("mode %o, want 600", got)
		}
	})
}

func TestWhiteouts(t *testing.T) {
	formats(t, func(t *testing.T, f layer.WhiteoutFormat) {
		l1 := newLayerFS(t, f).
			file("a/file", "x", 0o644).file("a/other", "y", 0o644).
			file("d/sub/deep", "z", 0o644).symlink("d/link", "/etc").
			file("o/lower1", "1", 0o644).dir("o/lowerdir/x", 0o755).
			file("o/both", "lower", 0o644)
		l2 := newLayerFS(t, f).
			whiteout("a/file").whiteout("d").whiteout("never/existed").
			opaque("o").file("o/upper", "u", 0o644).file("o/both", "upper", 0o644)
		dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2"))

		wantAbsent(t, dst+"/a/file")
		wantContent(t, dst+"/a/other", "y")
		wantAbsent(t, dst+"/d")
		wantAbsent(t, dst+"/never/existed")
		if got, want := names(t, dst+"/o"), []string{"both", "upper"}; !slices.Equal(got, want) {
			t.Errorf("opaque dir holds %v, want %v", got, want)
		}
		wantContent(t, dst+"/o/both", "upper")
		// No whiteout leaks into the flat tree, in either form.
		if got, want := names(t, dst+"/a"), []string{"other"}; !slices.Equal(got, want) {
			t.Errorf("a holds %v, want %v", got, want)
		}
		if got, want := names(t, dst), []string{"a", "never", "o"}; !slices.Equal(got, want) {
			t.Errorf("root holds %v, want %v", got, want)
		}
		if f == layer.WhiteoutOverlay {
			buf := make([]byte, 4)
			if _, err := unix.Lgetxattr(dst+"/o", layer.OpaqueXattr, buf); err == nil {
				t.Errorf("opaque xattr copied into the flat tree")
			}
		}
	})
}

// An OCI layer may white out a name and create it again: whiteouts hide lower layers only.
func TestOCIWhiteoutAndRecreateInOneLayer(t *testing.T) {
	l1 := newLayerFS(t, layer.WhiteoutOCI).file("x", "lower", 0o644).file("d/lower", "l", 0o644)
	l2 := newLayerFS(t, layer.WhiteoutOCI).whiteout("x").file("x", "upper", 0o644).
		whiteout("d").file("d/upper", "u", 0o644)
	dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2"))
	wantContent(t, dst+"/x", "upper")
	if got, want := names(t, dst+"/d"), []string{"upper"}; !slices.Equal(got, want) {
		t.Errorf("d holds %v, want %v", got, want)
	}
}

// An opaque root keeps nothing of the lower layers.
func TestOpaqueRoot(t *testing.T) {
	formats(t, func(t *testing.T, f layer.WhiteoutFormat) {
		l1 := newLayerFS(t, f).file("lower", "l", 0o644).file("target", "t", 0o644)
		l2 := newLayerFS(t, f).opaque("").file("upper", "u", 0o644)
		// The cross-layer link's pin must survive the opaque root being emptied.
		dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2", layer.Link{Path: "link", Target: "target"}))
		if got, want := names(t, dst), []string{"link", "upper"}; !slices.Equal(got, want) {
			t.Errorf("root holds %v, want %v", got, want)
		}
		wantContent(t, dst+"/link", "t")
	})
}

// OCI whiteouts naming "." or ".." must not remove the directory or its parent.
func TestOCIWhiteoutOfDotNames(t *testing.T) {
	l1 := newLayerFS(t, layer.WhiteoutOCI).file("a/b/f", "f", 0o644).file("top", "t", 0o644)
	l2 := newLayerFS(t, layer.WhiteoutOCI).file("a/b/.wh..", "", 0o644).file("a/b/.wh...", "", 0o644).file("a/.wh.", "", 0o644)
	dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2"))
	wantContent(t, dst+"/a/b/f", "f")
	wantContent(t, dst+"/top", "t")
	if got, want := names(t, dst+"/a/b"), []string{"f"}; !slices.Equal(got, want) {
		t.Errorf("a/b holds %v, want %v", got, want)
	}
}
