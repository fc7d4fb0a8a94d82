package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/store"
)

// --- raw tar writing, for what archive/tar refuses to write -------------------------------

// rawHeader returns one USTAR header block.
func rawHeader(typ byte, name string, size int64, linkname string) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", testTime.Unix()))
	b[156] = typ
	copy(b[157:257], linkname)
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	copy(b[148:156], "        ")
	var sum int
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad512(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// paxRecord formats "<len> key=value\n", where len counts the whole record.
func paxRecord(k, v string) string {
	rec := " " + k + "=" + v + "\n"
	n := len(rec)
	for m := len(strconv.Itoa(n)) + len(rec); m != n; m = len(strconv.Itoa(n)) + len(rec) {
		n = m
	}
	return strconv.Itoa(n) + rec
}

// rawEntry is a PAX extended header carrying records (key, value pairs; may be empty)
// followed by a USTAR entry named name (a harmless placeholder the PAX path overrides).
func rawEntry(typ byte, name, body, linkname string, records ...string) []byte {
	var out []byte
	if len(records) > 0 {
		var pax strings.Builder
		for i := 0; i+1 < len(records); i += 2 {
			pax.WriteString(paxRecord(records[i], records[i+1]))
		}
		out = append(out, rawHeader(tar.TypeXHeader, "PaxHeaders/"+name, int64(pax.Len()), "")...)
		out = append(out, pad512([]byte(pax.String()))...)
	}
	out = append(out, rawHeader(typ, name, int64(len(body)), linkname)...)
	return append(out, pad512([]byte(body))...)
}

// rawTar joins raw entries and the end-of-archive marker.
func rawTar(entries ...[]byte) []byte {
	return append(bytes.Join(entries, nil), make([]byte, 1024)...)
}

func gzBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// bombChunk is 16 MiB of zeros as one gzip member (~16 KiB), made once.
var bombChunk = sync.OnceValue(func() []byte { return gzBytes(make([]byte, 16<<20)) })

// gzipBomb is a multi-member gzip stream: head, then members members of 16 MiB of zeros
// each (3.2 MB of blob expand to 3.2 GB for 200 members).
func gzipBomb(head []byte, members int) []byte {
	out := gzBytes(head)
	for range members {
		out = append(out, bombChunk()...)
	}
	return out
}

// --- the hostile corpus ------------------------------------------------------------------

// hostileCase is one hostile layer and its documented outcome (see doc.go).
type hostileCase struct {
	name string
	blob []byte  // what Extract reads
	opts Options // limits; Whiteouts is set by the test
	// wantErr is the sentinel the error must wrap; nil = the layer is sanitised and kept.
	wantErr error
	msg     []string // substrings of the error (the entry, the limit…)
	check   func(t *testing.T, dir string, m *Meta)
}

// hostileCorpus returns the cases; top is the directory the extraction's parent lives in
// (<top>/parent/layerfs), so absolute names can aim at the real sentinels.
func hostileCorpus(t testing.TB, top string) []hostileCase {
	parent := filepath.Join(top, "parent")
	tarOf := func(ents ...ent) []byte { return mkTar(t, ents...) }
	dev := func(typ byte, name string, major, minor int64) ent {
		return ent{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor, ModTime: testTime}}
	}
	deep := strings.Repeat("a/", 9999) + "f" // 10,000 components
	const tib = int64(1) << 40
	wantTree := func(want ...string) func(t *testing.T, dir string, m *Meta) {
		return func(t *testing.T, dir string, m *Meta) {
			if got := tree(t, dir); !slices.Equal(got, want) {
				t.Errorf("layerfs = %q, want %q", got, want)
			}
		}
	}
	return []hostileCase{
		// traversal
		{name: "dotdot", blob: tarOf(file("../../etc/x", "pwned", 0o644)), wantErr: ErrUnsafe,
			msg: []string{`extracting "../../etc/x"`, `".." component`}},
		{name: "dotdot inside", blob: tarOf(file("ok", "", 0o644), file("a/../../outside", "pwned", 0o644)), wantErr: ErrUnsafe,
			msg: []string{`"a/../../outside"`}},
		{name: "dotdot dir", blob: tarOf(dirEnt("../escaped/", 0o755)), wantErr: ErrUnsafe, msg: []string{`"../escaped/"`}},
		{name: "pax path with embedded dotdot", wantErr: ErrUnsafe, msg: []string{`"safe/../../../outside"`},
			blob: rawTar(rawEntry(tar.TypeReg, "harmless", "pwned", "", "path", "safe/../../../outside"))},
		{name: "gnu sparse name with dotdot", wantErr: ErrUnsafe, msg: []string{`"../../etc/x"`},
			blob: rawTar(rawEntry(tar.TypeReg, "harmless", "x", "", "GNU.sparse.major", "0", "GNU.sparse.minor", "1",
				"GNU.sparse.name", "../../etc/x", "GNU.sparse.size", "1", "GNU.sparse.numblocks", "1", "GNU.sparse.map", "0,1"))},
		{name: "absolute", blob: tarOf(file("/abs/x", "x", 0o644), file(filepath.Join(parent, "outside"), "not outside", 0o644)),
			check: func(t *testing.T, dir string, m *Meta) {
				if got := readFile(t, filepath.Join(dir, parent, "outside")); got != "not outside" {
					t.Errorf("absolute name landed elsewhere: %q", got)
				}
				if got := readFile(t, filepath.Join(dir, "abs/x")); got != "x" {
					t.Errorf("abs/x = %q", got)
				}
			}},
		// names with NUL or "/" tricks in PAX headers
		{name: "pax path with NUL", wantErr: ErrMalformed, msg: []string{"invalid tar header", "matches its digest"},
			blob: rawTar(rawEntry(tar.TypeReg, "harmless", "pwned", "", "path", "ok\x00/../../outside"))},
		{name: "pax linkpath with NUL", wantErr: ErrMalformed, msg: []string{"invalid tar header"},
			blob: rawTar(rawEntry(tar.TypeSymlink, "harmless", "", "", "linkpath", "/etc\x00/passwd"))},
		{name: "pax path slashes", blob: rawTar(
			rawEntry(tar.TypeReg, "one", "1", "", "path", "//a//b/./c/"),
			rawEntry(tar.TypeReg, "two", "2", "", "path", "///"),
			rawEntry(tar.TypeReg, "three", "3", "", "path", "./././d")),
			check: func(t *testing.T, dir string, m *Meta) {
				wantTree("a", "a/b", "a/b/c", "d")(t, dir, m)
				if len(m.Skipped) != 1 || !strings.Contains(m.Skipped[0], "names the layer root") {
					t.Errorf("skipped = %q", m.Skipped)
				}
			}},
		{name: "pax linkpath dotdot", wantErr: ErrUnsafe, msg: []string{`hard link target "../outside"`},
			blob: rawTar(rawEntry(tar.TypeLink, "h", "", "", "linkpath", "../outside"))},
		{name: "huge pax header", wantErr: ErrLimit, msg: []string{"PAX", "1048576"},
			blob: rawTar(rawEntry(tar.TypeReg, "f", "x", "", "comment", strings.Repeat("A", 2<<20)))},
		{name: "long symlink target", wantErr: ErrLimit, msg: []string{`"l"`, "4095"},
			blob: tarOf(symlinkEnt("l", strings.Repeat("x/", 2100)))},
		// symlinks
		{name: "write through absolute symlink", wantErr: ErrUnsafe, msg: []string{`"evil/outside"`, "evil is a symlink"},
			blob: tarOf(symlinkEnt("evil", parent), file("evil/outside", "pwned", 0o644))},
		{name: "write through relative symlink", wantErr: ErrUnsafe, msg: []string{`"up/outside"`, "up is a symlink"},
			blob: tarOf(symlinkEnt("up", ".."), file("up/outside", "pwned", 0o644))},
		{name: "mkdir through symlink", wantErr: ErrUnsafe, msg: []string{"up is a symlink"},
			blob: tarOf(symlinkEnt("up", "../.."), dirEnt("up/etc/", 0o755))},
		{name: "symlink loop", wantErr: ErrUnsafe, msg: []string{`"a/x"`, "a is a symlink"},
			blob: tarOf(symlinkEnt("a", "b"), symlinkEnt("b", "a"), symlinkEnt("c", "c"), file("a/x", "pwned", 0o644))},
		{name: "self loop", wantErr: ErrUnsafe, msg: []string{"c is a symlink"},
			blob: tarOf(symlinkEnt("c", "c"), file("c/x", "pwned", 0o644))},
		{name: "dir replaced by symlink then written into", wantErr: ErrUnsafe, msg: []string{`"d/outside"`, "d is a symlink"},
			blob: tarOf(dirEnt("d/", 0o755), file("d/a", "a", 0o644), symlinkEnt("d", ".."), file("d/outside", "pwned", 0o644))},
		{name: "file over a symlink to outside", blob: tarOf(symlinkEnt("l", filepath.Join(parent, "outside")), file("l", "inside", 0o644)),
			check: func(t *testing.T, dir string, m *Meta) {
				if st := lstat(t, filepath.Join(dir, "l")); fileType(st) != unix.S_IFREG || readFile(t, filepath.Join(dir, "l")) != "inside" {
					t.Errorf("l is not the layer's file")
				}
			}},
		{name: "fifo in the way", wantErr: unix.ENOTDIR, msg: []string{`"f/x"`, "parent f is not a directory"},
			blob: tarOf(dev(tar.TypeFifo, "f", 0, 0), file("f/x", "pwned", 0o644))},
		{name: "file over a fifo", blob: tarOf(dev(tar.TypeFifo, "f", 0, 0), file("f", "not blocked", 0o644)),
			check: func(t *testing.T, dir string, m *Meta) {
				if st := lstat(t, filepath.Join(dir, "f")); fileType(st) != unix.S_IFREG || readFile(t, filepath.Join(dir, "f")) != "not blocked" {
					t.Errorf("f is not the layer's file")
				}
			}},
		{name: "symlinks kept verbatim", blob: tarOf(symlinkEnt("s1", parent), symlinkEnt("s2", "../../../../etc/passwd"), file("f", "x", 0o644)),
			check: func(t *testing.T, dir string, m *Meta) {
				if got, _ := os.Readlink(filepath.Join(dir, "s1")); got != parent {
					t.Errorf("s1 -> %q", got)
				}
				wantTree("f", "s1", "s2")(t, dir, m)
			}},
		// hard links
		{name: "hardlink to dotdot", wantErr: ErrUnsafe, msg: []string{`"h"`, `hard link target "../outside"`},
			blob: tarOf(linkEnt("h", "../outside"))},
		{name: "hardlink to etc passwd", blob: tarOf(linkEnt("h", "/etc/passwd"), linkEnt("h2", filepath.Join(parent, "outside"))),
			check: func(t *testing.T, dir string, m *Meta) {
				want := []Link{{Path: "h", Target: "etc/passwd"}, {Path: "h2", Target: strings.TrimPrefix(filepath.Join(parent, "outside"), "/")}}
				if !slices.Equal(m.Links, want) {
					t.Errorf("links = %v, want %v (targets inside the image)", m.Links, want)
				}
				wantTree()(t, dir, m)
			}},
		{name: "hardlink through symlink", wantErr: ErrUnsafe, msg: []string{"up is a symlink"},
			blob: tarOf(symlinkEnt("up", ".."), linkEnt("h", "up/outside"))},
		{name: "hardlink to directory", wantErr: ErrUnsafe, msg: []string{`hard link to directory "d"`},
			blob: tarOf(dirEnt("d/", 0o755), linkEnt("h", "d"))},
		// device nodes and fifos
		{name: "devices", blob: tarOf(dev(tar.TypeBlock, "dev/sda", 8, 0), dev(tar.TypeChar, "dev/mem", 1, 1),
			dev(tar.TypeChar, "fake-whiteout", 0, 0), dev(tar.TypeChar, "dev/null", 1, 3), dev(tar.TypeFifo, "run/fifo", 0, 0)),
			check: func(t *testing.T, dir string, m *Meta) {
				skipped := strings.Join(m.Skipped, "\n")
				for _, p := range []string{"dev/sda: block device 8:0", "dev/mem: character device 1:1", "fake-whiteout: character device 0:0"} {
					if !strings.Contains(skipped, p) {
						t.Errorf("skipped lacks %q: %q", p, m.Skipped)
					}
				}
				if st := lstat(t, filepath.Join(dir, "run/fifo")); fileType(st) != unix.S_IFIFO {
					t.Errorf("fifo not kept")
				}
				if os.Geteuid() == 0 {
					if st := lstat(t, filepath.Join(dir, "dev/null")); fileType(st) != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
						t.Errorf("dev/null not kept")
					}
					wantTree("dev", "dev/null", "run", "run/fifo")(t, dir, m)
				}
			}},
		{name: "overlay xattrs dropped", blob: func() []byte {
			d := dirEnt("d/", 0o755)
			d.hdr.PAXRecords = map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.trusted.overlay.opaque": "y"}
			return tarOf(d)
		}(), check: func(t *testing.T, dir string, m *Meta) {
			if len(m.Skipped) != 2 || !strings.Contains(m.Skipped[0], "trusted.overlay.opaque dropped") {
				t.Errorf("skipped = %q", m.Skipped)
			}
			if opaque(filepath.Join(dir, "d")) != "" {
				t.Error("opaque xattr set from the tar")
			}
		}},
		// limits
		{name: "10000 deep path", wantErr: ErrLimit, msg: []string{"19999 bytes, more than 3840", "MaxPathBytes", `"a/a/a/`, "(19999 bytes)"},
			blob: tarOf(file(deep, "deep", 0o644))},
		{name: "10000 deep path, depth limit", opts: Options{MaxPathBytes: -1}, wantErr: ErrLimit,
			msg: []string{"10000 components deep, more than 1024", "MaxPathDepth"}, blob: tarOf(file(deep, "deep", 0o644))},
		{name: "long component", wantErr: ErrLimit, msg: []string{"NAME_MAX"},
			blob: tarOf(file("d/"+strings.Repeat("n", 256), "", 0o644))},
		{name: "sparse 1 TiB", wantErr: ErrLimit, msg: []string{`"huge"`, fmt.Sprint(tib), "sparse", "--max-layer-bytes"},
			blob: rawTar(rawEntry(tar.TypeReg, "harmless", "x", "", "path", "huge", "GNU.sparse.major", "0", "GNU.sparse.minor", "1",
				"GNU.sparse.size", fmt.Sprint(tib), "GNU.sparse.numblocks", "1", "GNU.sparse.map", fmt.Sprintf("%d,1", tib-1)))},
		{name: "gzip bomb, one file", blob: gzipBomb(rawHeader(tar.TypeReg, "bomb", 200<<24, ""), 200),
			opts: Options{MaxUncompressedBytes: 32 << 20}, wantErr: ErrLimit,
			msg: []string{`"bomb"`, "files (this one 3355443200 bytes", "more than 33554432 bytes", "--max-layer-bytes"}},
		{name: "gzip bomb, skipped entry", blob: gzipBomb(rawHeader('Z', "bomb", 200<<24, ""), 200),
			opts: Options{MaxUncompressedBytes: 32 << 20}, wantErr: ErrLimit,
			msg: []string{`after entry "bomb"`, "uncompressed tar stream is more than 33554432 bytes", "--max-layer-bytes"}},
		{name: "gzip bomb, after the tar end", blob: gzipBomb(tarOf(file("f", "x", 0o644)), 200),
			opts: Options{MaxUncompressedBytes: 32 << 20}, wantErr: ErrLimit,
			msg: []string{"reading after the tar end", "uncompressed tar stream is more than 33554432 bytes", "--max-layer-bytes"}},
		{name: "files add up", opts: Options{MaxUncompressedBytes: 10 << 10}, wantErr: ErrLimit,
			msg:  []string{`"f2"`, "10240"},
			blob: tarOf(file("f1", strings.Repeat("x", 6<<10), 0o644), file("f2", strings.Repeat("y", 6<<10), 0o644))},
		{name: "entries", opts: Options{MaxEntries: 50}, wantErr: ErrLimit, msg: []string{"more than 50 entries", `"f50"`},
			blob: func() []byte {
				var ents []ent
				for i := range 100 {
					ents = append(ents, file(fmt.Sprintf("f%d", i), "", 0o644))
				}
				return tarOf(ents...)
			}()},
	}
}

// --- "nothing outside changed" ----------------------------------------------------------

type fileState struct {
	mode         fs.FileMode
	size         int64
	mtime, ctime unix.Timespec
	nlink        uint64
	ino          uint64
	sum          [32]byte
	link         string
}

// snapshot records every path below root except the subtree skip (the layer dir).
func snapshot(t testing.TB, root, skip string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		out[p] = statOf(t, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func statOf(t testing.TB, p string) fileState {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Lstat(p)
	s := fileState{mode: fi.Mode(), size: st.Size, mtime: st.Mtim, ctime: st.Ctim, nlink: st.Nlink, ino: st.Ino}
	switch {
	case fi.Mode().IsRegular():
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s.sum = sha256.Sum256(b)
	case fi.Mode()&fs.ModeSymlink != 0:
		s.link, _ = os.Readlink(p)
	}
	return s
}

func diffSnapshots(before, after map[string]fileState) []string {
	var out []string
	for p, b := range before {
		a, ok := after[p]
		switch {
		case !ok:
			out = append(out, "removed: "+p)
		case a != b:
			out = append(out, fmt.Sprintf("changed: %s (%+v -> %+v)", p, b, a))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, "created: "+p)
		}
	}
	slices.Sort(out)
	return out
}

// sentinelTree makes <top>/parent/layerfs next to files the hostile layers aim at, at the
// places "../" names and absolute paths built from parent would reach.
func sentinelTree(t testing.TB, top string) (parent, dir string) {
	parent = filepath.Join(top, "parent")
	dir = filepath.Join(parent, "layerfs")
	for p, body := range map[string]string{
		"parent/outside":    "sentinel",
		"parent/etc/passwd": "root:x:0:0::/root:/bin/sh\n",
		"parent/d/file":     "d",
		"etc/passwd":        "root:x:0:0::/root:/bin/sh\n",
		"outside":           "sentinel",
	} {
		p = filepath.Join(top, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return parent, dir
}

// TestHostileCorpus extracts every hostile layer (gzip-compressed, in both whiteout forms
// where possible) and checks the documented outcome, and that nothing outside the layer
// directory changed: not the sentinels beside it, not the host's /etc/passwd.
func TestHostileCorpus(t *testing.T) {
	formats := []WhiteoutFormat{WhiteoutOCI}
	if DefaultWhiteouts(t.TempDir()) == WhiteoutOverlay {
		formats = append(formats, WhiteoutOverlay)
	}
	hostPasswd := statOf(t, "/etc/passwd")
	// One top for every case, emptied in between: the corpus bakes its path into names.
	top := t.TempDir()
	corpus := hostileCorpus(t, top)
	for _, format := range formats {
		for _, c := range corpus {
			t.Run(string(format)+"/"+c.name, func(t *testing.T) {
				_, dir := sentinelTree(t, top)
				defer func() {
					if err := store.RemoveAll(top); err != nil {
						t.Fatal(err)
					}
				}()
				blob := c.blob
				if !bytes.HasPrefix(blob, magicGzip) {
					blob = compress(t, "gzip", blob)
				}
				before := snapshot(t, top, dir)
				opts := c.opts
				opts.Whiteouts = format
				want := Want{Digest: sha(blob), MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: int64(len(blob))}
				m, err := Extract(context.Background(), bytes.NewReader(blob), dir, want, opts)
				switch {
				case c.wantErr == nil && err != nil:
					t.Errorf("want the layer sanitised, got %v", err)
				case c.wantErr != nil && !errors.Is(err, c.wantErr):
					t.Errorf("err = %v, want one wrapping %v", err, c.wantErr)
				case c.wantErr != nil:
					for _, s := range append([]string{"layer " + want.Digest}, c.msg...) {
						if !strings.Contains(err.Error(), s) {
							t.Errorf("error lacks %q: %.600s", s, err)
						}
					}
					if len(err.Error()) > 2000 {
						t.Errorf("error is %d bytes long", len(err.Error()))
					}
				default:
					if c.check != nil {
						c.check(t, dir, m)
					}
				}
				if d := diffSnapshots(before, snapshot(t, top, dir)); len(d) > 0 {
					t.Errorf("outside the layer dir:\n%s", strings.Join(d, "\n"))
				}
				if after := statOf(t, "/etc/passwd"); after != hostPasswd {
					t.Errorf("host /etc/passwd changed")
				}
			})
		}
	}
}

// A layer that uses its own fifo (or file) as a directory fails the same way on every try:
// once the blob matches its digest the failure is ErrMalformed (permanent, not retried); a
// blob that does not match is a bad download (ErrDigestMismatch, retried).
func TestNonDirectoryParentIsMalformed(t *testing.T) {
	fifo := ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "f", Mode: 0o666, ModTime: testTime}}
	blob := compress(t, "gzip", mkTar(t, fifo, file("f/x", "x", 0o644)))
	want := Want{Digest: sha(blob), MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: int64(len(blob))}
	_, err := Extract(context.Background(), bytes.NewReader(blob), t.TempDir(), want, Options{})
	if !errors.Is(err, ErrMalformed) || !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("err = %v, want ErrMalformed wrapping ENOTDIR", err)
	}
	want.Digest = sha(append([]byte("other"), blob...))
	_, err = Extract(context.Background(), bytes.NewReader(blob), t.TempDir(), want, Options{})
	if errors.Is(err, ErrMalformed) || !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("with another digest err = %v, want ErrDigestMismatch and not ErrMalformed", err)
	}
}
