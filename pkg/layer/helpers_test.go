package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/store"
)

// ent is one tar entry of a test layer.
type ent struct {
	hdr  tar.Header
	body string
}

var testTime = time.Date(2020, 5, 17, 10, 11, 12, 0, time.UTC)

func file(name, body string, mode int64) ent {
	return ent{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: testTime}, body}
}

func dirEnt(name string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: testTime}}
}

func symlinkEnt(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: testTime}}
}

func linkEnt(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: testTime}}
}

// mkTar returns the uncompressed layer (PAX format, so long and unicode names survive).
func mkTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %s: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compress returns raw compressed with kind ("gzip", "zstd" or "tar" for none).
func compress(t testing.TB, kind string, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "gzip":
		zw := gzip.NewWriter(&buf)
		zw.Write(raw)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(raw)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		buf.Write(raw)
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// layerDir makes <tmp>/parent/layerfs, so tests can check nothing lands next to it.
func layerDir(t *testing.T) (parent, dir string) {
	parent = filepath.Join(t.TempDir(), "parent")
	dir = filepath.Join(parent, "layerfs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Layers hold 0000 and 0500 directories that TempDir's cleanup cannot remove unprivileged.
	t.Cleanup(func() { store.RemoveAll(parent) })
	return parent, dir
}

// extractEnts builds a gzip layer of ents and extracts it with the right digests.
func extractEnts(t *testing.T, format WhiteoutFormat, ents ...ent) (string, *Meta, error) {
	t.Helper()
	raw := mkTar(t, ents...)
	blob := compress(t, "gzip", raw)
	_, dir := layerDir(t)
	m, err := Extract(context.Background(), bytes.NewReader(blob), dir,
		Want{Digest: sha(blob), DiffID: sha(raw), MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: int64(len(blob))},
		Options{Whiteouts: format})
	return dir, m, err
}

func mustExtract(t *testing.T, format WhiteoutFormat, ents ...ent) (string, *Meta) {
	t.Helper()
	dir, m, err := extractEnts(t, format, ents...)
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	return dir, m
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return &st
}

func fileType(st *unix.Stat_t) uint32 { return st.Mode & unix.S_IFMT }

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertMissing(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("%s should not exist (err %v)", p, err)
	}
}

// tree lists every path below dir, for failure messages and escape checks.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if p != dir {
			r, _ := filepath.Rel(dir, p)
			out = append(out, r)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func requireRoot(t testing.TB) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func requireOverlay(t testing.TB) {
	if DefaultWhiteouts(t.TempDir()) != WhiteoutOverlay {
		t.Skip("cannot make overlay whiteouts here (needs root and trusted.* xattrs)")
	}
}
