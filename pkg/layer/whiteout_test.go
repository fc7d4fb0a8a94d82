package layer

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// whiteoutLayer holds a whiteout, and opaque markers before and after their siblings.
var whiteoutLayer = []ent{
	file(".wh.gone", "", 0o644),
	file("dir/.wh.x", "", 0o644),
	file("opq1/.wh..wh..opq", "", 0o644),
	file("opq1/sib", "before", 0o644),
	file("opq2/sib", "after", 0o644),
	file("opq2/.wh..wh..opq", "", 0o644),
}

func isWhiteoutDevice(t *testing.T, p string) bool {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	return fileType(&st) == unix.S_IFCHR && st.Rdev == 0 && st.Mode&0o7777 == 0 && st.Uid == 0 && st.Gid == 0
}

func opaque(p string) string {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(p, OpaqueXattr, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func TestWhiteoutsOverlay(t *testing.T) {
	requireOverlay(t)
	dir, m := mustExtract(t, WhiteoutOverlay, whiteoutLayer...)
	if m.Whiteouts != WhiteoutOverlay {
		t.Errorf("meta whiteouts %q", m.Whiteouts)
	}
	for _, p := range []string{"gone", "dir/x"} {
		if !isWhiteoutDevice(t, filepath.Join(dir, p)) {
			t.Errorf("%s is not a 0/0 char device, mode 0, owner 0:0", p)
		}
	}
	for _, d := range []string{"opq1", "opq2"} {
		if got := opaque(filepath.Join(dir, d)); got != "y" {
			t.Errorf("%s: %s = %q", d, OpaqueXattr, got)
		}
	}
	if got := readFile(t, filepath.Join(dir, "opq1/sib")); got != "before" {
		t.Errorf("opq1/sib = %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "opq2/sib")); got != "after" {
		t.Errorf("opq2/sib = %q", got)
	}
	want := []string{"dir", "dir/x", "gone", "opq1", "opq1/sib", "opq2", "opq2/sib"}
	if got := tree(t, dir); !slices.Equal(got, want) {
		t.Errorf("tree = %v, want %v", got, want)
	}
}

func TestWhiteoutsOCI(t *testing.T) {
	junk := file("dir/.wh.junk", "content is dropped", 0o644)
	dir, m := mustExtract(t, WhiteoutOCI, append(slices.Clone(whiteoutLayer), junk)...)
	if m.Whiteouts != WhiteoutOCI {
		t.Errorf("meta whiteouts %q", m.Whiteouts)
	}
	for _, p := range []string{".wh.gone", "dir/.wh.x", "dir/.wh.junk", "opq1/.wh..wh..opq", "opq2/.wh..wh..opq"} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
			t.Errorf("%s: want an empty regular file (%v, %v)", p, fi, err)
		}
	}
	for _, p := range []string{"opq1/sib", "opq2/sib"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
			t.Error(err)
		}
	}
	if opaque(filepath.Join(dir, "opq1")) != "" {
		t.Error("OCI form must not set the opaque xattr")
	}
}

// A whiteout only hides lower layers: a same-layer entry of that name wins in either order.
func TestWhiteoutAndSameNameInOneLayer(t *testing.T) {
	ents := []ent{
		file("f1", "file first", 0o644), file(".wh.f1", "", 0o644),
		file(".wh.f2", "", 0o644), file("f2", "whiteout first", 0o644),
		file(".wh.d", "", 0o644), file("d/child", "implicit dir after whiteout", 0o644),
		file(".wh.e", "", 0o644), dirEnt("e/", 0o711),
		linkEnt("lnk", "earlier/layer/file"), file(".wh.lnk", "", 0o644),
	}
	t.Run("overlay", func(t *testing.T) {
		requireOverlay(t)
		dir, m := mustExtract(t, WhiteoutOverlay, ents...)
		if got := readFile(t, filepath.Join(dir, "f1")); got != "file first" {
			t.Errorf("f1 = %q", got)
		}
		if got := readFile(t, filepath.Join(dir, "f2")); got != "whiteout first" {
			t.Errorf("f2 = %q", got)
		}
		if got := readFile(t, filepath.Join(dir, "d/child")); got != "implicit dir after whiteout" {
			t.Errorf("d/child = %q", got)
		}
		if st := lstat(t, filepath.Join(dir, "e")); fileType(st) != unix.S_IFDIR || st.Mode&0o777 != 0o711 {
			t.Errorf("e: mode %o", st.Mode)
		}
		if !slices.Equal(m.Links, []Link{{Path: "lnk", Target: "earlier/layer/file"}}) {
			t.Errorf("links = %v", m.Links)
		}
		want := []string{"d", "d/child", "e", "f1", "f2"}
		if got := tree(t, dir); !slices.Equal(got, want) {
			t.Errorf("tree = %v, want %v", got, want)
		}
		wantSkipped := []string{".wh.f1: whiteout of an entry of the same layer", ".wh.lnk: whiteout of an entry of the same layer"}
		if !slices.Equal(m.Skipped, wantSkipped) {
			t.Errorf("skipped = %q", m.Skipped)
		}
	})
	t.Run("oci", func(t *testing.T) {
		dir, _ := mustExtract(t, WhiteoutOCI, ents...)
		want := []string{".wh.d", ".wh.e", ".wh.f1", ".wh.f2", ".wh.lnk", "d", "d/child", "e", "f1", "f2"}
		if got := tree(t, dir); !slices.Equal(got, want) {
			t.Errorf("tree = %v, want %v", got, want)
		}
	})
}

func TestDefaultWhiteoutsLeavesDirEmpty(t *testing.T) {
	dir := t.TempDir()
	f := DefaultWhiteouts(dir)
	if os.Geteuid() != 0 && f != WhiteoutOCI {
		t.Errorf("non-root got %q", f)
	}
	if got := tree(t, dir); len(got) != 0 {
		t.Errorf("probe left %v", got)
	}
}
