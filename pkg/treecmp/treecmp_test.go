package treecmp

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sample builds a small tree under a new temp dir.
func sample(t *testing.T) string {
	t.Helper()
	r := t.TempDir()
	p := func(s string) string { return filepath.Join(r, s) }
	must(t, os.MkdirAll(p("d/sub"), 0o755))
	must(t, os.WriteFile(p("d/f"), []byte("hello\n"), 0o644))
	must(t, os.WriteFile(p("suid"), []byte("x"), 0o644))
	must(t, syscall.Chmod(p("suid"), 0o4755)) // os.Chmod would drop the bit
	must(t, os.Mkdir(p("sticky"), 0o755))
	must(t, syscall.Chmod(p("sticky"), 0o1777))
	must(t, os.Symlink("/etc/passwd", p("abs")))
	must(t, os.Symlink("../../../../nowhere", p("d/dangling")))
	must(t, os.Link(p("d/f"), p("z-link")))
	must(t, os.Link(p("d/f"), p("b-link")))
	must(t, os.WriteFile(p("lonely"), []byte("one"), 0o600))
	must(t, os.Link(p("lonely"), p("lonely2")))
	must(t, unix.Mkfifo(p("fifo"), 0o600))
	return r
}

func TestWalk(t *testing.T) {
	r := sample(t)
	tr, err := Walk(r, func(rel string) bool { return rel == "lonely2" })
	must(t, err)
	if _, ok := tr["."]; ok {
		t.Error("root included")
	}
	want := map[string]Entry{
		"d":          {Type: Dir, Mode: 0o755},
		"d/sub":      {Type: Dir, Mode: 0o755},
		"d/f":        {Type: File, Mode: 0o644, Size: 6, SHA256: sum("hello\n"), Link: "b-link"},
		"b-link":     {Type: File, Mode: 0o644, Size: 6, SHA256: sum("hello\n"), Link: "b-link"},
		"z-link":     {Type: File, Mode: 0o644, Size: 6, SHA256: sum("hello\n"), Link: "b-link"},
		"suid":       {Type: File, Mode: 0o4755, Size: 1, SHA256: sum("x")},
		"sticky":     {Type: Dir, Mode: 0o1777},
		"abs":        {Type: Symlink, Mode: 0o777, Target: "/etc/passwd"},
		"d/dangling": {Type: Symlink, Mode: 0o777, Target: "../../../../nowhere"},
		"lonely":     {Type: File, Mode: 0o600, Size: 3, SHA256: sum("one")},
		"fifo":       {Type: FIFO, Mode: 0o600},
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	for p, w := range want {
		w.UID, w.GID = uid, gid
		if w.Type == Dir || w.Type == Symlink {
			// directories and symlinks may get the group of a setgid parent; keep it simple
			w.GID = tr[p].GID
		}
		if got := tr[p]; got != w {
			t.Errorf("%s: got %+v, want %+v", p, got, w)
		}
	}
	if len(tr) != len(want) {
		t.Errorf("got %d entries, want %d: %v", len(tr), len(want), tr)
	}
	// without the exclusion, lonely and lonely2 form a group.
	tr2, err := Walk(r, nil)
	must(t, err)
	if tr2["lonely"].Link != "lonely" || tr2["lonely2"].Link != "lonely" {
		t.Errorf("lonely group: %+v %+v", tr2["lonely"], tr2["lonely2"])
	}
}

func TestExcludeDir(t *testing.T) {
	r := sample(t)
	tr, err := Walk(r, func(rel string) bool { return rel == "d" })
	must(t, err)
	for p := range tr {
		if p == "d" || strings.HasPrefix(p, "d/") {
			t.Errorf("excluded %s walked", p)
		}
	}
	// d/f is excluded, so b-link and z-link are the group.
	if tr["b-link"].Link != "b-link" || tr["z-link"].Link != "b-link" {
		t.Errorf("group: %+v", tr["z-link"])
	}
}

func TestDoesNotFollowSymlinks(t *testing.T) {
	r := t.TempDir()
	must(t, os.Symlink("/", filepath.Join(r, "root")))
	tr, err := Walk(r, nil)
	must(t, err)
	if len(tr) != 1 || tr["root"].Type != Symlink {
		t.Fatalf("got %v", tr)
	}
}

func TestRootOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for mknod and chown")
	}
	r := t.TempDir()
	must(t, unix.Mknod(filepath.Join(r, "null"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(filepath.Join(r, "wh"), syscall.S_IFCHR|0o000, 0))
	must(t, unix.Mknod(filepath.Join(r, "blk"), syscall.S_IFBLK|0o600, int(unix.Mkdev(7, 0))))
	must(t, unix.Chmod(filepath.Join(r, "null"), 0o666)) // mknod applies the umask
	must(t, os.WriteFile(filepath.Join(r, "owned"), nil, 0o000))
	must(t, os.Lchown(filepath.Join(r, "owned"), 1000, 65534))
	must(t, os.Symlink("x", filepath.Join(r, "lnk")))
	must(t, os.Lchown(filepath.Join(r, "lnk"), 1000, 1000))
	tr, err := Walk(r, nil)
	must(t, err)
	if e := tr["null"]; e.Type != Char || e.Rdev != unix.Mkdev(1, 3) || e.Mode != 0o666 {
		t.Errorf("null: %+v", e)
	}
	if e := tr["wh"]; e.Type != Char || e.Rdev != 0 || e.Mode != 0 {
		t.Errorf("wh: %+v", e)
	}
	if e := tr["blk"]; e.Type != Block || e.Rdev != unix.Mkdev(7, 0) {
		t.Errorf("blk: %+v", e)
	}
	if e := tr["owned"]; e.UID != 1000 || e.GID != 65534 || e.Mode != 0 || e.SHA256 == "" {
		t.Errorf("owned: %+v", e)
	}
	if e := tr["lnk"]; e.UID != 1000 || e.GID != 1000 {
		t.Errorf("lnk: %+v", e)
	}
}

func TestDiff(t *testing.T) {
	a, b := sample(t), sample(t)
	ta, err := Walk(a, nil)
	must(t, err)
	tb, err := Walk(b, nil)
	must(t, err)
	if d := Diff(ta, tb); len(d) != 0 {
		t.Fatalf("identical trees differ: %v", d)
	}
	pb := func(s string) string { return filepath.Join(b, s) }
	must(t, os.WriteFile(pb("d/f"), []byte("HELLO\n"), 0o644)) // content: d/f, b-link, z-link
	must(t, syscall.Chmod(pb("suid"), 0o755))
	must(t, os.Remove(pb("abs")))
	must(t, os.Symlink("/etc/shadow", pb("abs")))
	must(t, os.Remove(pb("fifo")))
	must(t, os.WriteFile(pb("fifo"), nil, 0o600))
	must(t, os.Remove(pb("lonely2"))) // lonely leaves its group
	must(t, os.WriteFile(pb("extra"), nil, 0o644))
	must(t, os.RemoveAll(pb("d/sub")))
	tb, err = Walk(b, nil)
	must(t, err)
	got := Diff(ta, tb)
	want := []string{
		"abs: target \"/etc/passwd\" != \"/etc/shadow\"",
		"b-link: sha256 " + sum("hello\n")[:12] + " != " + sum("HELLO\n")[:12],
		"d/f: sha256 " + sum("hello\n")[:12] + " != " + sum("HELLO\n")[:12],
		"d/sub: only in a (dir)",
		"extra: only in b (file)",
		"fifo: type fifo != file",
		"lonely2: only in a (file)",
		"lonely: hardlink group \"lonely\" != \"\"",
		"suid: mode 4755 != 0755",
		"z-link: sha256 " + sum("hello\n")[:12] + " != " + sum("HELLO\n")[:12],
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
