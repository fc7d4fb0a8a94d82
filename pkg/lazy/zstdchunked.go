package lazy

import (
	"context"
	"fmt"
	"io"

	"go.podman.io/storage/pkg/chunked/compressor"

	"flatbed.dev/pkg/layer"
)

// ZstdChunkedArtifactType is the artifactType of a zstd:chunked image pushed as a referrer.
const ZstdChunkedArtifactType = "application/vnd.flatbed.lazy.zstd-chunked.v1+json"

// The annotations containers/storage reads on a zstd:chunked layer (its internal/minimal
// package): where the TOC ("manifest") and the tar-split data are in the blob, and their digests.
const (
	ZstdChunkedManifestChecksum = "io.github.containers.zstd-chunked.manifest-checksum"
	ZstdChunkedManifestPosition = "io.github.containers.zstd-chunked.manifest-position"
	ZstdChunkedTarSplitPosition = "io.github.containers.zstd-chunked.tarsplit-position"
)

// ZstdChunkedLevel is the zstd level of zstd:chunked layers when Options.Level is 0: zstd's
// own default, which compresses about as well here as containers/storage's default (10, the
// encoder's slowest setting) in a third of the time.
const ZstdChunkedLevel = 3

type zstdChunkedConverter struct{ o Options }

func (zstdChunkedConverter) Compression() string  { return "zstd" }
func (zstdChunkedConverter) NeedsOCI() bool       { return true }
func (zstdChunkedConverter) ArtifactType() string { return ZstdChunkedArtifactType }

// Convert writes zstd:chunked with containers/storage's own compressor, the one podman push
// --compression-format zstd:chunked uses: each file's chunks in their own zstd frames, the TOC
// and the tar-split data in skippable frames at the end. The tar streams through; the
// uncompressed stream is the same tar, so the diff ID is that of the input (left zero here:
// ConvertLayer has hashed the tar).
func (c zstdChunkedConverter) Convert(ctx context.Context, tar *io.SectionReader, w io.Writer) (Converted, error) {
	meta := map[string]string{}
	level := c.o.Level
	if level == 0 {
		level = ZstdChunkedLevel
	}
	zw, err := compressor.ZstdCompressor(w, meta, &level)
	if err != nil {
		return Converted{}, fmt.Errorf("starting the zstd:chunked compressor: %w", err)
	}
	if _, err := io.Copy(zw, layer.ContextReader(ctx, io.NewSectionReader(tar, 0, tar.Size()))); err != nil {
		_ = zw.Close()
		return Converted{}, fmt.Errorf("compressing to zstd:chunked: %w", err)
	}
	if err := zw.Close(); err != nil {
		return Converted{}, fmt.Errorf("finishing the zstd:chunked blob: %w", err)
	}
	if meta[ZstdChunkedManifestChecksum] == "" || meta[ZstdChunkedManifestPosition] == "" {
		return Converted{}, fmt.Errorf("the zstd:chunked compressor wrote no TOC annotations (got %v)", meta)
	}
	return Converted{Annotations: meta}, nil // the diff ID is the tar's
}
