package lazy

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// ChunkedTOC is the part of a zstd:chunked TOC ("manifest") that VerifyZstdChunked checks.
type ChunkedTOC struct {
	Version int `json:"version"`
	Entries []struct {
		Type   string `json:"type"`
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		Digest string `json:"digest"`
	} `json:"entries"`
}

// VerifyZstdChunked checks a zstd:chunked blob as containers/storage reads one: the TOC is
// where the manifest-position annotation says, hashes to the manifest-checksum annotation,
// and every regular file of the layer's tar has an entry whose digest its content matches.
// It returns the TOC.
func VerifyZstdChunked(blob *io.SectionReader, annotations map[string]string) (*ChunkedTOC, error) {
	pos := annotations[ZstdChunkedManifestPosition]
	var off, length, uncompressed, typ int64
	if _, err := fmt.Sscanf(pos, "%d:%d:%d:%d", &off, &length, &uncompressed, &typ); err != nil {
		return nil, fmt.Errorf("annotation %s %q: %w", ZstdChunkedManifestPosition, pos, err)
	}
	if off < 0 || length <= 0 || off+length > blob.Size() {
		return nil, fmt.Errorf("annotation %s %q points outside the %d-byte blob", ZstdChunkedManifestPosition, pos, blob.Size())
	}
	compressed := make([]byte, length)
	if _, err := blob.ReadAt(compressed, off); err != nil {
		return nil, fmt.Errorf("reading the TOC: %w", err)
	}
	sum := sha256.Sum256(compressed)
	if want := annotations[ZstdChunkedManifestChecksum]; want != "sha256:"+hex.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("the TOC at %d is sha256:%x, the %s annotation says %q", off, sum, ZstdChunkedManifestChecksum, want)
	}
	d, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	raw, err := d.DecodeAll(compressed, nil)
	if err != nil {
		return nil, fmt.Errorf("decompressing the TOC: %w", err)
	}
	var toc ChunkedTOC
	if err := json.Unmarshal(raw, &toc); err != nil {
		return nil, fmt.Errorf("reading the TOC: %w", err)
	}
	files := map[string]string{}
	for _, e := range toc.Entries {
		if e.Type == "reg" {
			files[strings.TrimPrefix(e.Name, "./")] = e.Digest
		}
	}
	zr, err := zstd.NewReader(io.NewSectionReader(blob, 0, blob.Size()))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return &toc, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the layer's tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimPrefix(h.Name, "./")
		want, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("%s is in the layer but not in its TOC", name)
		}
		fh := sha256.New()
		if _, err := io.Copy(fh, tr); err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		if got := "sha256:" + hex.EncodeToString(fh.Sum(nil)); got != want && (h.Size != 0 || want != "") {
			return nil, fmt.Errorf("%s is %s, its TOC entry says %s", name, got, want)
		}
	}
}
