package lazy

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/stargz-snapshotter/estargz"
	digest "github.com/opencontainers/go-digest"
)

// VerifyEstargz checks an eStargz blob as stargz-snapshotter does before it trusts one: the
// TOC's digest is tocDigest (the layer's containerd.io/snapshot/stargz/toc.digest annotation),
// and every chunk of every file in the blob hashes to the digest the TOC gives it. It returns
// the number of chunks checked.
func VerifyEstargz(blob *io.SectionReader, tocDigest string) (int, error) {
	want, err := digest.Parse(tocDigest)
	if err != nil {
		return 0, fmt.Errorf("TOC digest %q: %w", tocDigest, err)
	}
	r, err := estargz.Open(blob)
	if err != nil {
		return 0, fmt.Errorf("opening the eStargz blob: %w", err)
	}
	v, err := r.VerifyTOC(want)
	if err != nil {
		return 0, fmt.Errorf("verifying the eStargz TOC: %w", err)
	}
	zr, err := (&estargz.GzipDecompressor{}).Reader(io.NewSectionReader(blob, 0, blob.Size()))
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	chunks := 0
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return chunks, nil
		}
		if err != nil {
			return chunks, fmt.Errorf("reading the eStargz tar: %w", err)
		}
		if h.Name == estargz.TOCTarName || h.Typeflag != tar.TypeReg {
			continue
		}
		if _, ok := r.Lookup(h.Name); !ok {
			return chunks, fmt.Errorf("%s is in the blob but not in its TOC", h.Name)
		}
		for off := int64(0); off < h.Size; {
			ce, ok := r.ChunkEntryForOffset(h.Name, off)
			if !ok || ce.ChunkSize <= 0 {
				return chunks, fmt.Errorf("%s: no TOC chunk at offset %d", h.Name, off)
			}
			cv, err := v.Verifier(ce)
			if err != nil {
				return chunks, fmt.Errorf("%s at %d: %w", h.Name, off, err)
			}
			if _, err := io.CopyN(cv, tr, ce.ChunkSize); err != nil {
				return chunks, fmt.Errorf("%s at %d: %w", h.Name, off, err)
			}
			if !cv.Verified() {
				return chunks, fmt.Errorf("%s: the chunk at offset %d does not match its TOC digest", h.Name, off)
			}
			chunks++
			off += ce.ChunkSize
		}
	}
}
