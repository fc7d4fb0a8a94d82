package flatten

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/singularity"
)

// fileFacts is what must never change of a layer's file: its content and metadata (not its
// link count or ctime, which a hard link to it changes by definition, nor its atime, which
// reading it changes).
type fileFacts struct {
	sum      [32]byte
	mode     uint32
	uid, gid uint32
	size     int64
	mtime    unix.Timespec
	xattrs   string
}

func layerFacts(t *testing.T, roots ...string) map[string]fileFacts {
	t.Helper()
	out := map[string]fileFacts{}
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			f := fileFacts{mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size, mtime: st.Mtim}
			if d.Type().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				f.sum = sha256.Sum256(b)
			}
			names := listXattrs(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
			slices.Sort(names)
			for _, n := range names {
				v, _ := getXattr(func(b []byte) (int, error) { return unix.Lgetxattr(p, n, b) })
				f.xattrs += n + "=" + string(v) + ";"
			}
			out[p] = f
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// With LinkFiles the flat tree's files are the layers' files, and nothing the flattener does
// (replacing, chmod-ing by a new entry, deleting, making opaque, linking within a layer and
// across layers, then writing the Singularity files) changes a layer's file.
func TestLinkedTreesNeverChangeLayerFiles(t *testing.T) {
	formats(t, func(t *testing.T, f layer.WhiteoutFormat) {
		old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		base := newLayerFS(t, f).
			file("bin/sh", "#!shell", 0o755).
			file("etc/passwd", "root:x:0:0\n", 0o644).
			file("etc/shadow", "root:*\n", 0o600).
			file("usr/lib/libc.so", "libc v1", 0o755).
			file("opt/app/data", "data v1", 0o644).
			file("setuid", "suid", 0o4755).
			hardlink("bin/sh-link", "bin/sh").
			mtime("etc/passwd", old).mtime("bin/sh", old)
		replace := newLayerFS(t, f).
			file("etc/passwd", "root:x:0:0\nuser:x:1000:1000\n", 0o644).
			file("usr/lib/libc.so", "libc v1", 0o700). // a chmod is a new entry with the same content
			whiteout("etc/shadow").
			opaque("opt/app").file("opt/app/new", "new", 0o644)
		other := newLayerFS(t, f).
			file("bin/sh", "#!other shell", 0o755). // replaces one name of a hard-link pair
			whiteout("setuid").dir("sbin", 0o755).
			file(".singularity.d/env/90-environment.sh", "image's own", 0o644)
		crossLink := []layer.Link{{Path: "sbin/sh", Target: "bin/sh"}}
		images := [][]Layer{
			{base.layer("sha256:base"), replace.layer("sha256:replace")},
			{base.layer("sha256:base"), other.layer("sha256:other")},
			{base.layer("sha256:base"), replace.layer("sha256:replace"), other.layer("sha256:other", crossLink...)},
			{base.layer("sha256:base")},
		}
		roots := []string{base.root, replace.root, other.root}
		before := layerFacts(t, roots...)
		var linked int64
		for i, img := range images {
			dst := filepath.Join(t.TempDir(), fmt.Sprint("flat", i))
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			st, err := Build(context.Background(), dst, img, Options{LinkFiles: true})
			if err != nil {
				t.Fatalf("image %d: %v", i, err)
			}
			linked += st.Linked
			if err := singularity.Write(dst, singularity.Config{Env: []string{"A=1"}, Cmd: []string{"sh"}}); err != nil {
				t.Fatalf("image %d: %v", i, err)
			}
			if i == 0 {
				wantContent(t, filepath.Join(dst, "etc/passwd"), "root:x:0:0\nuser:x:1000:1000\n")
				wantAbsent(t, filepath.Join(dst, "etc/shadow"))
				// The flat file is the layer's file.
				a, b := lstat(t, filepath.Join(dst, "bin/sh")), lstat(t, base.path("bin/sh"))
				if a.Ino != b.Ino {
					t.Errorf("bin/sh is not the layer's file (inode %d, layer %d)", a.Ino, b.Ino)
				}
				if m := lstat(t, filepath.Join(dst, "usr/lib/libc.so")).Mode & 0o7777; m != 0o700 {
					t.Errorf("libc.so mode %o, want 0700 from the upper layer", m)
				}
			}
			if i == 2 {
				wantContent(t, filepath.Join(dst, "sbin/sh"), "#!shell")
				wantContent(t, filepath.Join(dst, "bin/sh"), "#!other shell")
				wantContent(t, filepath.Join(dst, "bin/sh-link"), "#!shell")
				if !strings.Contains(content(t, filepath.Join(dst, ".singularity.d/env/90-environment.sh")), "export A='1'") {
					t.Error("the Singularity env file was not written")
				}
			}
		}
		if linked == 0 {
			t.Fatal("no file was linked")
		}
		after := layerFacts(t, roots...)
		for p, b := range before {
			if a, ok := after[p]; !ok {
				t.Errorf("%s: removed from its layer", p)
			} else if a != b {
				t.Errorf("%s changed in its layer:\n before %+v\n after  %+v", p, b, a)
			}
		}
		for p := range after {
			if _, ok := before[p]; !ok {
				t.Errorf("%s: created in a layer", p)
			}
		}
	})
}

// A file that cannot be linked (another file system here) is copied instead.
func TestLinkFallsBackToCopy(t *testing.T) {
	l := newLayerFS(t, layer.WhiteoutOCI).file("a", "content", 0o644)
	dst, err := os.MkdirTemp("/dev/shm", "flat")
	if err != nil {
		t.Skip("no /dev/shm to put the tree on another file system:", err)
	}
	defer os.RemoveAll(dst)
	var lst, dst2 unix.Statfs_t
	_ = unix.Statfs(l.root, &lst)
	_ = unix.Statfs(dst, &dst2)
	if lst.Fsid == dst2.Fsid {
		t.Skip("/dev/shm is on the same file system as the layers")
	}
	st, err := Build(context.Background(), dst, []Layer{l.layer("sha256:a")}, Options{LinkFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Files != 1 || st.Linked != 0 {
		t.Errorf("files %d linked %d, want 1 copied", st.Files, st.Linked)
	}
	wantContent(t, filepath.Join(dst, "a"), "content")
}
