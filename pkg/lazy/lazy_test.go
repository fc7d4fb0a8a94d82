package lazy

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/treecmp"
)

// testTar is a layer with directories, an empty file, a file of several eStargz chunks (over
// the 4 MiB chunk size), a symlink and a hard link, after the regular files first (name,
// content), if any.
func testTar(t *testing.T, first ...[2]string) []byte {
	t.Helper()
	big := make([]byte, 9<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	mod := time.Unix(1700000000, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.ModTime, h.Format = mod, tar.FormatPAX
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range first {
		add(&tar.Header{Typeflag: tar.TypeReg, Name: f[0], Mode: 0o644}, []byte(f[1]))
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}, nil)
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/hostname", Mode: 0o644}, []byte("lazy\n"))
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/empty", Mode: 0o600}, nil)
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "usr/", Mode: 0o755}, nil)
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "usr/bin/", Mode: 0o755}, nil)
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "usr/bin/big", Mode: 0o755}, big)
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/bin/sh", Linkname: "big"}, nil)
	add(&tar.Header{Typeflag: tar.TypeLink, Name: "usr/bin/big2", Linkname: "usr/bin/big"}, nil)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t *testing.T, raw []byte, how string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch how {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		return raw
	}
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// unpack extracts a blob with flatbed's own extractor and records the tree.
func unpack(t *testing.T, blob []byte, exclude func(string) bool) treecmp.Tree {
	t.Helper()
	dir := t.TempDir()
	if _, err := layer.Extract(context.Background(), bytes.NewReader(blob), dir, layer.Want{Digest: sha(blob).String(), Size: int64(len(blob))}, layer.Options{}); err != nil {
		t.Fatalf("extracting: %v", err)
	}
	tr, err := treecmp.Walk(dir, exclude)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// estargzOwn are the entries eStargz adds to a layer: its TOC and the prefetch landmarks.
func estargzOwn(rel string) bool {
	return rel == estargz.TOCTarName || rel == estargz.PrefetchLandmark || rel == estargz.NoPrefetchLandmark
}

func convertBytes(t *testing.T, src []byte, diffID v1.Hash, format string, o Options, oci bool) (*Layer, []byte) {
	t.Helper()
	c, err := New(format, o)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ConvertLayer(context.Background(), bytes.NewReader(src), Source{Digest: sha(src), DiffID: diffID}, c, oci, t.TempDir())
	if err != nil {
		t.Fatalf("converting to %s: %v", format, err)
	}
	t.Cleanup(func() { _ = l.Remove() })
	blob, err := os.ReadFile(l.Path)
	if err != nil {
		t.Fatal(err)
	}
	if sha(blob) != l.Digest || int64(len(blob)) != l.Size {
		t.Fatalf("the converted blob is %s (%d bytes), the layer says %s (%d)", sha(blob), len(blob), l.Digest, l.Size)
	}
	return l, blob
}

// A gzip, a zstd and a plain-tar layer converted to eStargz pass the estargz library's TOC and
// chunk verification and unpack to the same tree as the original, each way a layer is
// written: with prioritised files (the library's Build), without (one pass), without but over
// the size written in one pass (Build in parallel parts).
func TestEstargzFromEachCompression(t *testing.T) {
	raw := testTar(t)
	want := unpack(t, raw, nil)
	for _, way := range []struct {
		name        string
		prioritized []string
		serialBelow int64
		landmark    string
	}{
		{"prioritized", []string{"etc/hostname", "not/there"}, estargzSerialBelow, estargz.PrefetchLandmark},
		{"serial", nil, estargzSerialBelow, estargz.NoPrefetchLandmark},
		{"parallel", nil, 1 << 20, estargz.NoPrefetchLandmark},
	} {
		for _, how := range []string{"gzip", "zstd", "tar"} {
			t.Run(way.name+"/"+how, func(t *testing.T) {
				defer func(n int64) { estargzSerialBelow = n }(estargzSerialBelow)
				estargzSerialBelow = way.serialBelow
				src := compress(t, raw, how)
				l, blob := convertBytes(t, src, sha(raw), Estargz, Options{PrioritizedFiles: way.prioritized}, false)
				checkEstargz(t, l, blob, want, way.landmark)
			})
		}
	}
}

// checkEstargz checks a converted eStargz layer: its media type, TOC and chunks, diff ID and
// uncompressed size, the tree it unpacks to, and its landmark (what is prefetched).
func checkEstargz(t *testing.T, l *Layer, blob []byte, want treecmp.Tree, landmark string) {
	t.Helper()
	if l.MediaType != "application/vnd.docker.image.rootfs.diff.tar.gzip" {
		t.Errorf("media type %s, want Docker's gzip layer without --oci", l.MediaType)
	}
	toc := l.Annotations[estargz.TOCJSONDigestAnnotation]
	chunks, err := VerifyEstargz(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))), toc)
	if err != nil {
		t.Fatalf("estargz verification: %v", err)
	}
	if chunks < 3 {
		t.Errorf("verified %d chunks, want the 9 MiB file's 3 and more", chunks)
	}
	plain := mustGunzip(t, blob)
	if l.DiffID != sha(plain) {
		t.Errorf("diff ID %s is not the digest of the blob uncompressed", l.DiffID)
	}
	if got, want := l.Annotations[estargz.StoreUncompressedSizeAnnotation], strconv.Itoa(len(plain)); got != want {
		t.Errorf("uncompressed size annotation %q, the blob uncompresses to %s bytes", got, want)
	}
	if d := treecmp.Diff(want, unpack(t, blob, estargzOwn)); len(d) > 0 {
		t.Errorf("the eStargz layer unpacks to another tree:\n%s", strings.Join(d, "\n"))
	}
	r, err := estargz.Open(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Lookup(landmark); !ok {
		t.Errorf("no %s in the TOC", landmark)
	}
	// A wrong TOC digest is refused.
	if _, err := VerifyEstargz(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))), sha([]byte("x")).String()); err == nil {
		t.Error("a wrong TOC digest passed verification")
	}
}

// A tar naming a file twice, or holding an earlier conversion's landmark, goes through the
// library's Build (which keeps the last entry of a name, and drops landmarks) even when small:
// the layer still unpacks to the tree the original does.
func TestEstargzDuplicateNames(t *testing.T) {
	raw := testTar(t, [2]string{"motd", "old\n"}, [2]string{estargz.NoPrefetchLandmark, "\x0f"}, [2]string{"motd", "new\n"})
	ok, err := plainTar(io.NewSectionReader(bytes.NewReader(raw), 0, int64(len(raw))))
	if err != nil || ok {
		t.Fatalf("plainTar = %v, %v; want false: the tar names etc/motd twice", ok, err)
	}
	l, blob := convertBytes(t, raw, sha(raw), Estargz, Options{}, false)
	want := unpack(t, raw, func(rel string) bool { return rel == estargz.NoPrefetchLandmark })
	checkEstargz(t, l, blob, want, estargz.NoPrefetchLandmark)
}

func mustGunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// zstd:chunked carries containers/storage's TOC annotations, its TOC is where they say and
// names every file with its digest, and the blob decompresses to the same tar (same diff ID).
func TestZstdChunked(t *testing.T) {
	raw := testTar(t)
	want := unpack(t, raw, nil)
	l, blob := convertBytes(t, compress(t, raw, "gzip"), sha(raw), ZstdChunked, Options{}, false)
	if l.MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
		t.Errorf("media type %s, want OCI's zstd layer (Docker has none)", l.MediaType)
	}
	for _, k := range []string{ZstdChunkedManifestChecksum, ZstdChunkedManifestPosition, ZstdChunkedTarSplitPosition} {
		if l.Annotations[k] == "" {
			t.Errorf("annotation %s missing: %v", k, l.Annotations)
		}
	}
	toc, err := VerifyZstdChunked(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))), l.Annotations)
	if err != nil {
		t.Fatalf("zstd:chunked verification: %v", err)
	}
	if toc.Version != 1 || len(toc.Entries) < 5 {
		t.Errorf("TOC version %d with %d entries", toc.Version, len(toc.Entries))
	}
	zr, _ := zstd.NewReader(bytes.NewReader(blob))
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sha(plain) != l.DiffID {
		t.Errorf("diff ID %s, the blob decompresses to %s", l.DiffID, sha(plain))
	}
	if d := treecmp.Diff(want, unpack(t, blob, nil)); len(d) > 0 {
		t.Errorf("the zstd:chunked layer unpacks to another tree:\n%s", strings.Join(d, "\n"))
	}
	bad := maps.Clone(l.Annotations)
	bad[ZstdChunkedManifestChecksum] = sha([]byte("x")).String()
	if _, err := VerifyZstdChunked(io.NewSectionReader(bytes.NewReader(blob), 0, int64(len(blob))), bad); err == nil {
		t.Error("a wrong manifest checksum passed verification")
	}
}

// A blob that does not hash to its digest, or whose tar is not the config's diff ID, is refused
// before anything is converted; an unknown format names the known ones.
func TestConvertLayerChecks(t *testing.T) {
	raw := testTar(t)
	src := compress(t, raw, "gzip")
	c, _ := New(Estargz, Options{})
	if _, err := ConvertLayer(context.Background(), bytes.NewReader(src), Source{Digest: sha([]byte("other")), DiffID: sha(raw)}, c, false, t.TempDir()); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("wrong digest: %v", err)
	}
	if _, err := ConvertLayer(context.Background(), bytes.NewReader(src), Source{Digest: sha(src), DiffID: sha([]byte("other"))}, c, false, t.TempDir()); err == nil || !strings.Contains(err.Error(), "diff ID") {
		t.Errorf("wrong diff ID: %v", err)
	}
	dir := t.TempDir()
	_, _ = ConvertLayer(context.Background(), bytes.NewReader(src), Source{Digest: sha([]byte("other"))}, c, false, dir)
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
		t.Errorf("a failed conversion left %v", left)
	}
	if _, err := New("overlaybd", Options{}); err == nil || !strings.Contains(err.Error(), "estargz, zstd-chunked") {
		t.Errorf("unknown format: %v", err)
	}
}

// The config keeps every field but the diff IDs; the manifest of a referrer is OCI with a
// subject and an artifact type.
func TestRewrite(t *testing.T) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","x-unknown":{"a":1},"rootfs":{"type":"layers","diff_ids":["sha256:00"]},"config":{"Env":["A=1"]}}`)
	d := sha([]byte("new"))
	out, err := RewriteConfig(cfg, []v1.Hash{d})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"x-unknown":{"a":1}`, `"diff_ids":["` + d.String() + `"]`, `"Env":["A=1"]`} {
		if !strings.Contains(string(out), s) {
			t.Errorf("config %s lacks %s", out, s)
		}
	}
	subject := v1.Descriptor{MediaType: "application/vnd.docker.distribution.manifest.v2+json", Digest: sha([]byte("orig")), Size: 3}
	b, mt, err := Manifest(&v1.Manifest{}, v1.Descriptor{Digest: sha(out), Size: int64(len(out))}, nil, Shape{Subject: &subject, ArtifactType: EstargzArtifactType})
	if err != nil {
		t.Fatal(err)
	}
	if mt != "application/vnd.oci.image.manifest.v1+json" || !strings.Contains(string(b), `"subject":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"`) ||
		!strings.Contains(string(b), `"artifactType":"`+EstargzArtifactType) || !strings.Contains(string(b), `"mediaType":"application/vnd.oci.image.config.v1+json"`) {
		t.Errorf("referrer manifest %s (%s)", b, mt)
	}
}

// A layer whose hard link names a file of a lower layer cannot be eStargz (its TOC must hold
// the target): the conversion says so instead of publishing a layer the snapshotter refuses.
func TestEstargzCrossLayerHardlink(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "b", Linkname: "a-in-a-lower-layer", Format: tar.FormatPAX})
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "c", Size: 1, Mode: 0o644, Format: tar.FormatPAX})
	_, _ = tw.Write([]byte("c"))
	_ = tw.Close()
	raw := buf.Bytes()
	c, _ := New(Estargz, Options{})
	_, err := ConvertLayer(context.Background(), bytes.NewReader(raw), Source{Digest: sha(raw)}, c, false, t.TempDir())
	if !errors.Is(err, ErrNotLazy) {
		t.Errorf("got %v, want ErrNotLazy", err)
	}
}
