package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestCompressionsAndMeta(t *testing.T) {
	ents := []ent{
		file("top.txt", "hello", 0o644),
		file("a/b/c/deep.txt", "deep", 0o600), // parents implicit
		dirEnt("d/", 0o755),
		file("d/in.txt", "in d", 0o644),
	}
	raw := mkTar(t, ents...)
	for _, kind := range []string{"gzip", "zstd", "tar"} {
		t.Run(kind, func(t *testing.T) {
			blob := compress(t, kind, raw)
			_, dir := layerDir(t)
			// The media type says gzip for all three: detection goes by the bytes.
			want := Want{Digest: sha(blob), DiffID: sha(raw), MediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", Size: int64(len(blob))}
			m, err := Extract(context.Background(), bytes.NewReader(blob), dir, want, Options{Whiteouts: WhiteoutOCI})
			if err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(dir, "a/b/c/deep.txt")); got != "deep" {
				t.Errorf("deep.txt = %q", got)
			}
			if got := readFile(t, filepath.Join(dir, "top.txt")); got != "hello" {
				t.Errorf("top.txt = %q", got)
			}
			for _, d := range []string{"a", "a/b", "a/b/c"} {
				st := lstat(t, filepath.Join(dir, d))
				if fileType(st) != unix.S_IFDIR || st.Mode&0o7777 != 0o755 {
					t.Errorf("implicit dir %s: mode %o", d, st.Mode)
				}
			}
			wantMeta := Meta{Digest: sha(blob), DiffID: sha(raw), Compression: kind,
				Size: int64(len(blob)), UncompressedSize: int64(len(raw)), Entries: 4, Whiteouts: WhiteoutOCI}
			if m.Digest != wantMeta.Digest || m.DiffID != wantMeta.DiffID || m.Compression != wantMeta.Compression ||
				m.Size != wantMeta.Size || m.UncompressedSize != wantMeta.UncompressedSize ||
				m.Entries != wantMeta.Entries || m.Whiteouts != wantMeta.Whiteouts || len(m.Links) != 0 || len(m.Skipped) != 0 {
				t.Errorf("meta = %+v, want %+v", *m, wantMeta)
			}
			// "d/" has its own entry; a, a/b, a/b/c were only needed as parents.
			if got := strings.Join(m.ImplicitDirs, ","); got != "a,a/b,a/b/c" {
				t.Errorf("ImplicitDirs = %q, want a,a/b,a/b/c", got)
			}
		})
	}
}

// GNU tar pads archives to 10 KiB records; the diffID covers the padding, so it must be read.
func TestTarPaddingIsHashed(t *testing.T) {
	raw := append(mkTar(t, file("f", "x", 0o644)), make([]byte, 10240)...)
	blob := compress(t, "gzip", raw)
	_, dir := layerDir(t)
	m, err := Extract(context.Background(), bytes.NewReader(blob), dir, Want{Digest: sha(blob), DiffID: sha(raw), Size: int64(len(blob))}, Options{Whiteouts: WhiteoutOCI})
	if err != nil {
		t.Fatal(err)
	}
	if m.UncompressedSize != int64(len(raw)) {
		t.Errorf("uncompressed size %d, want %d", m.UncompressedSize, len(raw))
	}
}

func TestReplace(t *testing.T) {
	dir, _ := mustExtract(t, WhiteoutOCI,
		file("x", "file first", 0o644),
		dirEnt("x/", 0o755), // file replaced by dir
		file("x/child", "c", 0o644),

		dirEnt("d/", 0o700),
		file("d/sub/f", "gone", 0o644),
		file("d", "dir replaced by file", 0o640),

		file("same", "old", 0o644),
		file("same", "new", 0o600),

		symlinkEnt("s", "/etc/passwd"),
		file("s", "not through the symlink", 0o644),

		dirEnt("again/", 0o700),
		file("again/keep", "k", 0o644),
		dirEnt("again/", 0o750), // existing dir: only metadata changes
	)
	if got := readFile(t, filepath.Join(dir, "x/child")); got != "c" {
		t.Errorf("x/child = %q", got)
	}
	st := lstat(t, filepath.Join(dir, "d"))
	if fileType(st) != unix.S_IFREG || st.Mode&0o777 != 0o640 {
		t.Errorf("d: mode %o", st.Mode)
	}
	if got := readFile(t, filepath.Join(dir, "d")); got != "dir replaced by file" {
		t.Errorf("d = %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "same")); got != "new" {
		t.Errorf("same = %q", got)
	}
	if fileType(lstat(t, filepath.Join(dir, "s"))) != unix.S_IFREG {
		t.Error("s should be a regular file")
	}
	if got := readFile(t, filepath.Join(dir, "again/keep")); got != "k" {
		t.Errorf("again/keep = %q", got)
	}
	if m := lstat(t, filepath.Join(dir, "again")).Mode & 0o777; m != 0o750 {
		t.Errorf("again: mode %o, want 750", m)
	}
}

func TestSymlinks(t *testing.T) {
	targets := map[string]string{
		"abs":      "/etc/passwd",
		"rel":      "../lib/x.so",
		"dangling": "does-not-exist",
		"up":       "../../..",
		"dir/deep": "../../../../../../etc/shadow",
	}
	var ents []ent
	for name, target := range targets {
		ents = append(ents, symlinkEnt(name, target))
	}
	dir, _ := mustExtract(t, WhiteoutOCI, ents...)
	for name, target := range targets {
		got, err := os.Readlink(filepath.Join(dir, name))
		if err != nil || got != target {
			t.Errorf("%s -> %q (%v), want %q", name, got, err, target)
		}
		if mt := lstat(t, filepath.Join(dir, name)).Mtim; mt.Sec != testTime.Unix() {
			t.Errorf("%s: symlink mtime %d, want %d", name, mt.Sec, testTime.Unix())
		}
	}
}

func TestHardlinks(t *testing.T) {
	dir, m := mustExtract(t, WhiteoutOCI,
		file("bin/orig", "shared", 0o755),
		linkEnt("bin/alias", "bin/orig"),
		linkEnt("/usr/bin/abs-alias", "/bin/orig"), // absolute names and an implicit parent
		linkEnt("bin/lower", "usr/lib/from-earlier-layer"),
		symlinkEnt("bin/sl", "orig"),
		linkEnt("bin/hl", "bin/sl"), // links the symlink itself
		linkEnt("later/replaced", "not/here"),
		file("later/replaced", "a later entry wins", 0o644),
	)
	orig := lstat(t, filepath.Join(dir, "bin/orig"))
	for _, p := range []string{"bin/alias", "usr/bin/abs-alias"} {
		if st := lstat(t, filepath.Join(dir, p)); st.Ino != orig.Ino {
			t.Errorf("%s: inode %d, want %d", p, st.Ino, orig.Ino)
		}
	}
	if orig.Nlink != 3 {
		t.Errorf("nlink %d, want 3", orig.Nlink)
	}
	if sl, hl := lstat(t, filepath.Join(dir, "bin/sl")), lstat(t, filepath.Join(dir, "bin/hl")); fileType(hl) != unix.S_IFLNK || hl.Ino != sl.Ino {
		t.Errorf("bin/hl: type %o inode %d, want the symlink's inode %d", fileType(hl), hl.Ino, sl.Ino)
	}
	assertMissing(t, filepath.Join(dir, "bin/lower"))
	want := []Link{{Path: "bin/lower", Target: "usr/lib/from-earlier-layer"}}
	if !slices.Equal(m.Links, want) {
		t.Errorf("links = %v, want %v", m.Links, want)
	}
}

func TestModes(t *testing.T) {
	dir, _ := mustExtract(t, WhiteoutOCI,
		file("setuid", "s", 0o4755),
		file("setgid", "g", 0o2711),
		dirEnt("sticky/", 0o1777),
		dirEnt("sgid-dir/", 0o2775),
		file("zero", "unreadable content", 0o000),
		dirEnt("closed/", 0o000),
		file("closed/inside", "written before the dir closed", 0o644),
		dirEnt("ro/", 0o500),
		file("ro/x", "x", 0o400),
	)
	for p, want := range map[string]uint32{
		"setuid": 0o4755, "setgid": 0o2711, "sticky": 0o1777, "sgid-dir": 0o2775,
		"zero": 0, "closed": 0, "ro": 0o500, "ro/x": 0o400,
	} {
		if got := lstat(t, filepath.Join(dir, p)).Mode & 0o7777; got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	if os.Geteuid() == 0 {
		if got := readFile(t, filepath.Join(dir, "zero")); got != "unreadable content" {
			t.Errorf("zero = %q", got)
		}
		if got := readFile(t, filepath.Join(dir, "closed/inside")); got != "written before the dir closed" {
			t.Errorf("closed/inside = %q", got)
		}
	}
}

func TestOwners(t *testing.T) {
	requireRoot(t)
	own := func(e ent) ent { e.hdr.Uid, e.hdr.Gid = 1234, 1234; return e }
	dir, _ := mustExtract(t, WhiteoutOCI,
		own(file("f", "x", 0o4755)),
		own(dirEnt("d/", 0o2755)),
		own(symlinkEnt("l", "f")),
	)
	for _, p := range []string{"f", "d", "l"} {
		st := lstat(t, filepath.Join(dir, p))
		if st.Uid != 1234 || st.Gid != 1234 {
			t.Errorf("%s: owner %d:%d", p, st.Uid, st.Gid)
		}
	}
	// setuid survives chown because the mode is applied after it
	if got := lstat(t, filepath.Join(dir, "f")).Mode & 0o7777; got != 0o4755 {
		t.Errorf("f: mode %o", got)
	}
	if got := lstat(t, filepath.Join(dir, "d")).Mode & 0o7777; got != 0o2755 {
		t.Errorf("d: mode %o", got)
	}
}

func TestMtimes(t *testing.T) {
	old := time.Date(2001, 2, 3, 4, 5, 6, 700_000_000, time.UTC)
	at := func(e ent) ent { e.hdr.ModTime = old; return e }
	dir, _ := mustExtract(t, WhiteoutOCI,
		at(dirEnt("d/", 0o755)),
		at(dirEnt("d/sub/", 0o555)),
		at(file("d/sub/f", "x", 0o644)), // children written after their dirs
		at(file("d/g", "y", 0o644)),
		at(symlinkEnt("d/l", "g")),
		at(dirEnt("d/sub/", 0o555)), // dir entry repeated after its children
	)
	for _, p := range []string{"d", "d/sub", "d/sub/f", "d/g", "d/l"} {
		st := lstat(t, filepath.Join(dir, p))
		if st.Mtim.Sec != old.Unix() || st.Mtim.Nsec != int64(old.Nanosecond()) {
			t.Errorf("%s: mtime %d.%09d, want %d.%09d", p, st.Mtim.Sec, st.Mtim.Nsec, old.Unix(), old.Nanosecond())
		}
	}
}

func TestLongAndUnicodeNames(t *testing.T) {
	long := strings.Repeat("long-component-", 15) // 225 bytes: fits NAME_MAX, not ustar
	deep := strings.Repeat("deep/", 40) + "leaf"  // 204 bytes of path
	uni := "ünïcødé/日本語/файл-🚀.txt"
	longTarget := strings.Repeat("../", 60) + "target"
	dir, _ := mustExtract(t, WhiteoutOCI,
		file(long, "l", 0o644),
		file(deep, "d", 0o644),
		file(uni, "u", 0o644),
		symlinkEnt("longlink", longTarget),
	)
	for p, want := range map[string]string{long: "l", deep: "d", uni: "u"} {
		if got := readFile(t, filepath.Join(dir, p)); got != want {
			t.Errorf("%s = %q", p, got)
		}
	}
	if got, _ := os.Readlink(filepath.Join(dir, "longlink")); got != longTarget {
		t.Errorf("longlink -> %q", got)
	}
}

func TestXattrs(t *testing.T) {
	requireRoot(t)
	e := file("f", "x", 0o644)
	e.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.flatbed": "v", "SCHILY.xattr.user.flatbed": "u"}
	d := dirEnt("d/", 0o755)
	d.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.flatbed": "dir"}
	dir, _ := mustExtract(t, WhiteoutOCI, e, d)
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(dir, "f"), "trusted.flatbed", buf)
	if err != nil || string(buf[:n]) != "v" {
		t.Errorf("f: trusted.flatbed = %q (%v)", buf[:max(n, 0)], err)
	}
	n, err = unix.Lgetxattr(filepath.Join(dir, "d"), "trusted.flatbed", buf)
	if err != nil || string(buf[:n]) != "dir" {
		t.Errorf("d: trusted.flatbed = %q (%v)", buf[:max(n, 0)], err)
	}
}

func TestDeviceNodes(t *testing.T) {
	ents := []ent{
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: testTime}},
		{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o600, ModTime: testTime}},
	}
	dir, m := mustExtract(t, WhiteoutOCI, ents...)
	fifo := lstat(t, filepath.Join(dir, "run/fifo"))
	if fileType(fifo) != unix.S_IFIFO || fifo.Mode&0o777 != 0o600 {
		t.Errorf("fifo: mode %o", fifo.Mode)
	}
	if os.Geteuid() != 0 {
		if len(m.Skipped) != 1 || !strings.HasPrefix(m.Skipped[0], "dev/null: ") {
			t.Errorf("skipped = %q", m.Skipped)
		}
		return
	}
	st := lstat(t, filepath.Join(dir, "dev/null"))
	if fileType(st) != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 || st.Mode&0o777 != 0o666 {
		t.Errorf("dev/null: mode %o rdev %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
}

func TestRootAndAufsEntriesSkipped(t *testing.T) {
	dir, m := mustExtract(t, WhiteoutOCI,
		dirEnt("./", 0o700),
		dirEnt(".wh..wh.plnk/", 0o700),
		file(".wh..wh.plnk/123.456", "", 0o644),
		file("ok", "", 0o644),
	)
	if got := tree(t, dir); !slices.Equal(got, []string{"ok"}) {
		t.Errorf("tree = %v", got)
	}
	if m.Entries != 4 || len(m.Skipped) != 2 {
		t.Errorf("entries %d, skipped %q", m.Entries, m.Skipped)
	}
	if got := lstat(t, dir).Mode & 0o777; got != 0o755 {
		t.Errorf("root mode changed to %o", got)
	}
}
