package flatten

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"flatbed.dev/pkg/layer"
)

func TestHardlinkGroupWithinLayer(t *testing.T) {
	l := newLayerFS(t, layer.WhiteoutOCI).file("bin/a", "same", 0o755).
		hardlink("bin/b", "bin/a").hardlink("usr/c", "bin/a").file("solo", "s", 0o644)
	dst := build(t, l.layer("sha256:l1"))
	a, b, c := lstat(t, dst+"/bin/a"), lstat(t, dst+"/bin/b"), lstat(t, dst+"/usr/c")
	if a.Ino != b.Ino || a.Ino != c.Ino {
		t.Errorf("inodes %d %d %d, want one group", a.Ino, b.Ino, c.Ino)
	}
	if a.Nlink != 3 {
		t.Errorf("nlink %d, want 3", a.Nlink)
	}
	if src := lstat(t, l.path("bin/a")); src.Ino == a.Ino && src.Dev == a.Dev {
		t.Errorf("flat file shares the layerfs inode")
	}
	if n := lstat(t, dst+"/solo").Nlink; n != 1 {
		t.Errorf("solo nlink %d, want 1", n)
	}
	wantContent(t, dst+"/usr/c", "same")
}

func TestMetaLinks(t *testing.T) {
	l1 := newLayerFS(t, layer.WhiteoutOCI).file("usr/bin/tool", "tool v1", 0o755)
	l2 := newLayerFS(t, layer.WhiteoutOCI).dir("usr/local/bin", 0o755)
	links := []layer.Link{
		{Path: "usr/local/bin/tool", Target: "usr/bin/tool"},
		{Path: "usr/local/bin/again", Target: "usr/local/bin/tool"}, // a link to a link
	}
	l3 := newLayerFS(t, layer.WhiteoutOCI).whiteout("usr/bin/tool")

	t.Run("linked", func(t *testing.T) {
		dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2", links...))
		a, b, c := lstat(t, dst+"/usr/bin/tool"), lstat(t, dst+"/usr/local/bin/tool"), lstat(t, dst+"/usr/local/bin/again")
		if a.Ino != b.Ino || a.Ino != c.Ino || a.Nlink != 3 {
			t.Errorf("inodes %d %d %d nlink %d, want one group of 3", a.Ino, b.Ino, c.Ino, a.Nlink)
		}
		if got := names(t, dst); len(got) != 1 {
			t.Errorf("root holds %v: stash left behind?", got)
		}
	})
	t.Run("target deleted later", func(t *testing.T) {
		dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2", links...), l3.layer("sha256:l3"))
		wantAbsent(t, dst+"/usr/bin/tool")
		wantContent(t, dst+"/usr/local/bin/tool", "tool v1")
		if n := lstat(t, dst+"/usr/local/bin/tool").Nlink; n != 2 {
			t.Errorf("nlink %d, want 2", n)
		}
	})
	t.Run("target replaced by the same layer", func(t *testing.T) {
		// tar order "link, then new file": the link keeps the lower file.
		l2b := newLayerFS(t, layer.WhiteoutOCI).file("usr/bin/tool", "tool v2", 0o755).dir("usr/local/bin", 0o755)
		dst := build(t, l1.layer("sha256:l1"), l2b.layer("sha256:l2", links[0]))
		wantContent(t, dst+"/usr/bin/tool", "tool v2")
		wantContent(t, dst+"/usr/local/bin/tool", "tool v1")
	})
	t.Run("replaces a lower file", func(t *testing.T) {
		l1b := newLayerFS(t, layer.WhiteoutOCI).file("usr/bin/tool", "tool v1", 0o755).file("usr/local/bin/tool", "old", 0o644)
		dst := build(t, l1b.layer("sha256:l1"), l2.layer("sha256:l2", links[0]))
		wantContent(t, dst+"/usr/local/bin/tool", "tool v1")
	})
}

// A cross-layer hard link the lower layers cannot satisfy makes the image unflattenable,
// whatever is retried: the error wraps ErrMalformed, which is also a layer.ErrMalformed.
func TestMetaLinkErrors(t *testing.T) {
	l1 := newLayerFS(t, layer.WhiteoutOCI).file("a", "a", 0o644).symlink("sl", "/").dir("d/sub", 0o755)
	for _, tc := range []struct {
		name string
		link layer.Link
		want string
	}{
		{"missing target", layer.Link{Path: "b", Target: "missing"}, "does not exist"},
		{"target through symlink", layer.Link{Path: "b", Target: "sl/etc/passwd"}, "does not exist"},
		{"target below a file", layer.Link{Path: "b", Target: "a/x"}, "does not exist"},
		{"directory target", layer.Link{Path: "b", Target: "d"}, "the target is a directory"},
		{"path through symlink", layer.Link{Path: "sl/tmp/evil", Target: "a"}, "sl/tmp/evil"},
		{"path below a file", layer.Link{Path: "a/evil", Target: "a"}, "not a directory"},
		{"escaping path", layer.Link{Path: "../evil", Target: "a"}, "not a plain relative path"},
		{"escaping target", layer.Link{Path: "b", Target: "../a"}, "not a plain relative path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "flat")
			if err := os.Mkdir(dst, 0o700); err != nil {
				t.Fatal(err)
			}
			l2 := newLayerFS(t, layer.WhiteoutOCI)
			_, err := Build(context.Background(), dst, []Layer{l1.layer("sha256:l1"), l2.layer("sha256:l2", tc.link)}, Options{})
			if err == nil {
				t.Fatal("Build succeeded, want error")
			}
			for _, s := range []string{"sha256:l2", tc.link.Path, tc.link.Target, tc.want, "image cannot be flattened"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if !errors.Is(err, ErrMalformed) || !errors.Is(err, layer.ErrMalformed) {
				t.Errorf("error %q: errors.Is ErrMalformed %v, layer.ErrMalformed %v, want both", err, errors.Is(err, ErrMalformed), errors.Is(err, layer.ErrMalformed))
			}
		})
	}
}
