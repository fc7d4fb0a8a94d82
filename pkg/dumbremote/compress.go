package dumbremote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Recompressed is the record of a layer kept recompressed: the blob that holds it and the
// digest of its uncompressed content (the config's diff_id, which does not change).
type Recompressed struct {
	v1.Descriptor
	DiffID v1.Hash `json:"diffID"`
}

// recompressible reports whether a layer of media type mt is recompressed by Zstd: gzip and
// uncompressed tar layers; zstd, foreign and other blobs are kept as they are.
func recompressible(mt types.MediaType) bool {
	switch mt {
	case types.DockerLayer, types.OCILayer, types.DockerUncompressedLayer, types.OCIUncompressedLayer:
		return true
	}
	return false
}

// recompressedOf is the record of layer h, or ok false.
func (r *Remote) recompressedOf(ctx context.Context, h v1.Hash) (Recompressed, bool, error) {
	var rec Recompressed
	err := r.readSmall(ctx, recompressedKey(h), &rec)
	if errors.Is(err, errNotFound) {
		return rec, false, nil
	}
	return rec, err == nil, err
}

// putRecompressed keeps layer d recompressed with zstd unless the remote has it (as it is or
// recompressed). The zstd stream is written to a temporary file first (its digest names it),
// then uploaded, then recorded. It returns whether it wrote and how many bytes.
func (r *Remote) putRecompressed(ctx context.Context, d v1.Descriptor, l v1.Layer) (bool, int64, error) {
	if ok, err := r.HasBlob(ctx, d.Digest); err != nil || ok {
		return false, 0, err
	}
	if rec, ok, err := r.recompressedOf(ctx, d.Digest); err != nil {
		return false, 0, err
	} else if ok {
		if has, err := r.HasBlob(ctx, rec.Digest); err != nil || has {
			return false, 0, err
		}
	}
	want, err := l.DiffID()
	if err != nil {
		return false, 0, err
	}
	tmp, err := os.CreateTemp(r.tempDir, "flatbed-zstd-")
	if err != nil {
		return false, 0, fmt.Errorf("recompressing layer %s: %w (set TMPDIR to a directory with room)", d.Digest, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	rec, err := zstdTo(tmp, l)
	if err != nil {
		return false, 0, fmt.Errorf("recompressing layer %s: %w", d.Digest, err)
	}
	if rec.DiffID != want {
		return false, 0, fmt.Errorf("recompressing layer %s: its content hashes to %s, not the config's diff_id %s", d.Digest, rec.DiffID, want)
	}
	wrote, err := r.PutBlob(ctx, rec.Descriptor, func() (io.ReadCloser, error) {
		_, err := tmp.Seek(0, io.SeekStart)
		return io.NopCloser(tmp), err
	})
	if err != nil {
		return false, 0, err
	}
	if err := r.writeSmall(ctx, recompressedKey(d.Digest), rec); err != nil {
		return false, 0, err
	}
	if !wrote {
		return false, 0, nil
	}
	return true, rec.Size, nil
}

// zstdTo writes l's uncompressed content to f compressed with zstd, and describes it.
func zstdTo(f *os.File, l v1.Layer) (Recompressed, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return Recompressed{}, err
	}
	defer rc.Close()
	blob, diff := sha256.New(), sha256.New()
	counted := &countingWriter{w: io.MultiWriter(f, blob)}
	zw, err := zstd.NewWriter(counted, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return Recompressed{}, err
	}
	if _, err := io.Copy(zw, io.TeeReader(rc, diff)); err != nil {
		zw.Close()
		return Recompressed{}, err
	}
	if err := zw.Close(); err != nil {
		return Recompressed{}, err
	}
	if err := f.Sync(); err != nil {
		return Recompressed{}, err
	}
	return Recompressed{
		Descriptor: v1.Descriptor{MediaType: types.OCILayerZStd, Size: counted.n, Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(blob.Sum(nil))}},
		DiffID:     v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))},
	}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
