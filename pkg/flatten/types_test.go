package flatten

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/layer"
)

func TestTypeChanges(t *testing.T) {
	l1 := newLayerFS(t, layer.WhiteoutOCI).
		file("file2dir", "f", 0o644).
		file("dir2file/a", "a", 0o644).file("dir2file/b/c", "c", 0o644).
		symlink("link2file", "/etc/passwd").
		file("dir2link/x", "x", 0o644).
		file("merge/lower", "l", 0o644).dir("merge", 0o700)
	l2 := newLayerFS(t, layer.WhiteoutOCI).
		file("file2dir/inside", "i", 0o644).
		file("dir2file", "now a file", 0o644).
		file("link2file", "plain", 0o644).
		symlink("dir2link", "somewhere").
		file("merge/upper", "u", 0o644).dir("merge", 0o755)
	dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2"))

	wantType(t, dst+"/file2dir", unix.S_IFDIR)
	wantContent(t, dst+"/file2dir/inside", "i")
	wantContent(t, dst+"/dir2file", "now a file")
	wantType(t, dst+"/link2file", unix.S_IFREG)
	wantContent(t, dst+"/link2file", "plain")
	wantType(t, dst+"/dir2link", unix.S_IFLNK)
	if got, want := names(t, dst+"/merge"), []string{"lower", "upper"}; !slices.Equal(got, want) {
		t.Errorf("merged dir holds %v, want %v", got, want)
	}
	if got := lstat(t, dst+"/merge").Mode & 0o7777; got != 0o755 {
		t.Errorf("merged dir mode %o, want 755 (upper wins)", got)
	}
}

func TestEmptyDirs(t *testing.T) {
	l1 := newLayerFS(t, layer.WhiteoutOCI).dir("empty", 0o755).dir("a/b/c", 0o711)
	l2 := newLayerFS(t, layer.WhiteoutOCI).dir("later", 0o700)
	dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2"))
	for p, want := range map[string]uint32{"empty": 0o755, "a/b/c": 0o711, "later": 0o700} {
		st := lstat(t, dst+"/"+p)
		if st.Mode != unix.S_IFDIR|want {
			t.Errorf("%s: mode %o, want dir %o", p, st.Mode, want)
		}
	}
	if got := names(t, dst+"/empty"); len(got) != 0 {
		t.Errorf("empty holds %v", got)
	}
}
