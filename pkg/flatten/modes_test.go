package flatten

import (
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/layer"
)

func TestModesAndOwners(t *testing.T) {
	requireRoot(t)
	l1 := newLayerFS(t, layer.WhiteoutOCI).
		file("bin/su", "su", 0o4755).file("bin/wall", "wall", 0o2755).
		file("secret", "s", 0o000).
		dir("tmp", 0o1777).
		file("locked/in", "in", 0o644).dir("locked", 0o000).
		file("ro/in", "in", 0o644).dir("ro", 0o500).
		file("owned", "o", 0o640).chown("owned", 1234, 1234).
		dir("odir", 0o750).chown("odir", 1234, 4321).
		symlink("olink", "owned").chown("olink", 1234, 1234)
	// A later layer writes into the 0000 and 0500 directories.
	l2 := newLayerFS(t, layer.WhiteoutOCI).
		file("locked/more", "more", 0o644).dir("locked", 0o000).
		file("ro/more", "more", 0o644).dir("ro", 0o500)
	dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2"))

	for p, want := range map[string]uint32{
		"bin/su": 0o4755, "bin/wall": 0o2755, "secret": 0o000, "tmp": 0o1777,
		"locked": 0o000, "ro": 0o500, "owned": 0o640, "odir": 0o750, "locked/more": 0o644,
	} {
		if got := lstat(t, dst+"/"+p).Mode & 0o7777; got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	for p, want := range map[string][2]uint32{"owned": {1234, 1234}, "odir": {1234, 4321}, "olink": {1234, 1234}, "secret": {0, 0}} {
		st := lstat(t, dst+"/"+p)
		if st.Uid != want[0] || st.Gid != want[1] {
			t.Errorf("%s: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, want[0], want[1])
		}
	}
	wantContent(t, dst+"/locked/in", "in")
	wantContent(t, dst+"/ro/more", "more")
}

func TestTimesKept(t *testing.T) {
	old := time.Date(2001, 2, 3, 4, 5, 6, 700, time.UTC)
	older := time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
	l1 := newLayerFS(t, layer.WhiteoutOCI).file("d/sub/f", "f", 0o644).symlink("d/l", "f").dir("empty", 0o755)
	l1.mtime("d/sub/f", old).mtime("d/l", older).mtime("d/sub", old).mtime("d", older).mtime("empty", old).mtime("", old)
	// The upper layer's directories carry their own metadata, which wins on a merge.
	newer := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	l2 := newLayerFS(t, layer.WhiteoutOCI).file("d/sub/g", "g", 0o644).mtime("d/sub", older).mtime("d", newer).mtime("", newer)
	dst := build(t, l1.layer("sha256:l1"), l2.layer("sha256:l2"))

	for p, want := range map[string]time.Time{
		"d/sub/f": old, "d/l": older, "empty": old, "d/sub": older, "d": newer,
	} {
		st := lstat(t, dst+"/"+p)
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(want) {
			t.Errorf("%q: mtime %v, want %v", p, got.UTC(), want)
		}
	}
}

func TestDevicesAndFifos(t *testing.T) {
	requireRoot(t)
	l := newLayerFS(t, layer.WhiteoutOverlay)
	l.check(os.MkdirAll(l.path("dev"), 0o755))
	l.check(unix.Mknod(l.path("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	l.check(unix.Mknod(l.path("dev/sda"), unix.S_IFBLK|0o660, int(unix.Mkdev(8, 0))))
	l.check(unix.Mkfifo(l.path("dev/fifo"), 0o640))
	l.chmod("dev/null", 0o666).chmod("dev/sda", 0o660).chmod("dev/fifo", 0o640) // past the umask
	dst := build(t, l.layer("sha256:l1"))
	for p, want := range map[string]struct{ mode, rdev uint64 }{
		"dev/null": {unix.S_IFCHR | 0o666, unix.Mkdev(1, 3)},
		"dev/sda":  {unix.S_IFBLK | 0o660, unix.Mkdev(8, 0)},
		"dev/fifo": {unix.S_IFIFO | 0o640, 0},
	} {
		st := lstat(t, dst+"/"+p)
		if uint64(st.Mode) != want.mode || st.Rdev != want.rdev {
			t.Errorf("%s: mode %o rdev %x, want %o %x", p, st.Mode, st.Rdev, want.mode, want.rdev)
		}
	}
}

func TestXattrs(t *testing.T) {
	l := newLayerFS(t, layer.WhiteoutOCI).file("f", "f", 0o644).dir("d", 0o755)
	if err := unix.Setxattr(l.path("f"), "user.flatbed", []byte("yes"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	l.check(unix.Setxattr(l.path("d"), "user.dir", []byte("d"), 0))
	dst := build(t, l.layer("sha256:l1"))
	buf := make([]byte, 16)
	for p, want := range map[string][2]string{"f": {"user.flatbed", "yes"}, "d": {"user.dir", "d"}} {
		n, err := unix.Lgetxattr(dst+"/"+p, want[0], buf)
		if err != nil || string(buf[:n]) != want[1] {
			t.Errorf("%s: %s = %q (%v), want %q", p, want[0], buf[:max(n, 0)], err, want[1])
		}
	}
}

// A directory an upper layer only needed as a parent (no tar entry: layer.Meta.ImplicitDirs)
// keeps the lower layer's owner, mode and mtime, as applying the tar onto the lower tree would.
func TestImplicitDirKeepsLowerMetadata(t *testing.T) {
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	l1 := newLayerFS(t, layer.WhiteoutOCI).dir("opt", 0o750).file("opt/a", "a", 0o644).mtime("opt", old)
	l2 := newLayerFS(t, layer.WhiteoutOCI).file("opt/b", "b", 0o644)
	upper := l2.layer("sha256:l2")
	upper.Meta.ImplicitDirs = []string{"opt"}
	dst := build(t, l1.layer("sha256:l1"), upper)
	st := lstat(t, dst+"/opt")
	if st.Mode&0o7777 != 0o750 {
		t.Errorf("opt: mode %o, want 750 from the lower layer", st.Mode&0o7777)
	}
	if got := time.Unix(st.Mtim.Unix()); !got.Equal(old) {
		t.Errorf("opt: mtime %v, want %v", got.UTC(), old)
	}
	wantContent(t, dst+"/opt/b", "b")
}
