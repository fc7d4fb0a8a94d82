package flatten

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
	"flatbed.dev/pkg/layer"
)

func TestStats(t *testing.T) {
	l1 := newLayerFS(t, layer.WhiteoutOCI).file("a", "12345", 0o644).hardlink("b", "a").symlink("c", "a").dir("d", 0o755)
	l2 := newLayerFS(t, layer.WhiteoutOCI).whiteout("a")
	dst := filepath.Join(t.TempDir(), "flat")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := Build(context.Background(), dst, []Layer{l1.layer("sha256:l1"), l2.layer("sha256:l2")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Layers: 2, Files: 1, Dirs: 1, Symlinks: 1, Hardlinks: 1, Whiteouts: 1, Bytes: 5}
	if *got != want {
		t.Errorf("stats %+v, want %+v", *got, want)
	}
}

func TestBuildErrors(t *testing.T) {
	ok := newLayerFS(t, layer.WhiteoutOCI).file("f", "f", 0o644)
	for _, tc := range []struct {
		name   string
		ctx    func() context.Context
		layers []Layer
		want   string
	}{
		{"no meta", context.Background, []Layer{{FS: ok.root}}, "no metadata"},
		{"bad format", context.Background, []Layer{{FS: ok.root, Meta: &layer.Meta{Digest: "sha256:x", Whiteouts: "aufs"}}}, `sha256:x: unknown whiteout format "aufs"`},
		{"missing layerfs", context.Background, []Layer{{FS: "/nonexistent/layerfs", Meta: &layer.Meta{Digest: "sha256:y", Whiteouts: layer.WhiteoutOCI}}}, "layer sha256:y: opening /nonexistent/layerfs"},
		{"canceled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, []Layer{ok.layer("sha256:l1")}, context.Canceled.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			_, err := Build(tc.ctx(), dst, tc.layers, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			// Caller and store problems are not the image's.
			if errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is ErrMalformed", err)
			}
		})
	}
	t.Run("canceled is errors.Is", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Build(ctx, t.TempDir(), []Layer{ok.layer("sha256:l1")}, Options{}); !errors.Is(err, context.Canceled) {
			t.Errorf("error %v, want context.Canceled", err)
		}
	})
}

// The careful walk used without openat2 gives the same answers as openat2 on a layer tree.
func TestWalkBeneath(t *testing.T) {
	l := newLayerFS(t, layer.WhiteoutOCI).dir("a/b", 0o755).symlink("a/l", "b").symlink("abs", "/")
	root, err := os.Open(l.root)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	check := func(t *testing.T) {
		for _, tc := range []struct {
			rel  string
			want error
		}{{"a", nil}, {"a/b", nil}, {"a/l", unix.ELOOP}, {"abs", unix.ELOOP}, {"abs/etc", unix.ELOOP},
			{"a/../a", beneath.ErrInvalidPath}, {"nope", unix.ENOENT}} {
			fd, err := beneath.OpenDir(int(root.Fd()), tc.rel, beneath.Read)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Errorf("OpenDir(%q): err %v, want %v", tc.rel, err, tc.want)
			}
			if err == nil {
				closeFd(fd)
			}
		}
	}
	t.Run("openat2", check)
	t.Run("walk", func(t *testing.T) {
		t.Cleanup(beneath.WithoutOpenat2())
		check(t)
	})
}

func TestOverlayNeedsRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as root")
	}
	l := Layer{FS: t.TempDir(), Meta: &layer.Meta{Digest: "sha256:o", Whiteouts: layer.WhiteoutOverlay}}
	if _, err := Build(context.Background(), t.TempDir(), []Layer{l}, Options{}); err == nil || !strings.Contains(err.Error(), "needs root") {
		t.Errorf("error %v, want one saying root is needed", err)
	}
}
