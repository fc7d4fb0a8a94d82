package flatten

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"flatbed.dev/pkg/layer"
)

// An entry the extractor does not keep (a device node) still replaced the lower layers'
// entry of its path in the image: the flat tree must not show that one.
func TestDroppedEntriesHideLower(t *testing.T) {
	formats(t, func(t *testing.T, f layer.WhiteoutFormat) {
		l1 := newLayerFS(t, f).file("dev/sda", "lower file", 0o644).file("dev/keep", "k", 0o644).
			file("d/x", "x", 0o644).file("plain", "p", 0o644).symlink("sl", "/etc")
		l2 := newLayerFS(t, f).file("dev/new", "n", 0o644)
		upper := l2.layer("sha256:l2")
		upper.Meta.Dropped = []string{"d", "dev/sda", "missing/x", "plain/x", "sl/passwd"}
		dst := build(t, l1.layer("sha256:l1"), upper)

		wantAbsent(t, dst+"/dev/sda")
		wantAbsent(t, dst+"/d")
		if got, want := names(t, dst+"/dev"), []string{"keep", "new"}; !slices.Equal(got, want) {
			t.Errorf("dev holds %v, want %v", got, want)
		}
		// Nothing below a file or a symlink, and nothing made for a missing parent.
		wantContent(t, dst+"/plain", "p")
		if got, want := names(t, dst), []string{"dev", "plain", "sl"}; !slices.Equal(got, want) {
			t.Errorf("root holds %v, want %v", got, want)
		}
	})
}

func TestDroppedInvalidPath(t *testing.T) {
	l1 := newLayerFS(t, layer.WhiteoutOCI).file("a", "a", 0o644)
	upper := newLayerFS(t, layer.WhiteoutOCI).layer("sha256:l2")
	upper.Meta.Dropped = []string{"../a"}
	_, err := Build(context.Background(), t.TempDir(), []Layer{l1.layer("sha256:l1"), upper}, Options{})
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("err = %v, want ErrMalformed", err)
	}
}

// The same through the extractor: a block device and a character device it does not keep
// replace a lower file and a lower directory; a hard link made before the device, in tar
// order, keeps the lower file.
func TestDroppedDeviceFromExtract(t *testing.T) {
	l1 := extractTar(t, "sha256:l1",
		tarEnt{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "dev/sda", Mode: 0o644}, body: "lower file"},
		tarEnt{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "d/x", Mode: 0o644}, body: "x"},
		tarEnt{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "dev/keep", Mode: 0o644}, body: "k"})
	l2 := extractTar(t, "sha256:l2",
		tarEnt{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "saved", Linkname: "dev/sda"}},
		tarEnt{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Mode: 0o660, Devmajor: 8}},
		tarEnt{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "d", Mode: 0o600, Devmajor: 1, Devminor: 1}})
	dst := build(t, l1, l2)
	wantAbsent(t, dst+"/dev/sda")
	wantAbsent(t, dst+"/d")
	wantContent(t, dst+"/dev/keep", "k")
	wantContent(t, dst+"/saved", "lower file")
}

type tarEnt struct {
	hdr  tar.Header
	body string
}

// extractTar unpacks a plain tar of ents with layer.Extract, as the store keeps layers.
func extractTar(t *testing.T, name string, ents ...tarEnt) Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		h.Size = int64(len(e.body))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	fs := filepath.Join(t.TempDir(), "layerfs")
	if err := os.Mkdir(fs, 0o755); err != nil {
		t.Fatal(err)
	}
	want := layer.Want{Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(buf.Len())}
	m, err := layer.Extract(context.Background(), bytes.NewReader(buf.Bytes()), fs, want, layer.Options{Whiteouts: layer.WhiteoutOCI})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return Layer{FS: fs, Meta: m}
}
