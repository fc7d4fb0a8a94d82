package lazy

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

	"flatbed.dev/pkg/layer"
)

// ErrDigestMismatch is wrapped when a source blob does not hash to its digest or its tar to
// its diff ID: bytes lost on the way (worth a retry) or an inconsistent image.
var ErrDigestMismatch = errors.New("digest mismatch")

// maxZstdWindow bounds the memory of a zstd source's decoder, as the ingester does.
const maxZstdWindow = 128 << 20

// Source is one layer of the image being converted.
type Source struct {
	Digest v1.Hash // of the compressed blob, checked
	DiffID v1.Hash // of its tar, checked (zero: not checked)
	// Verified says the reader checks Digest itself and fails at its end when the bytes do
	// not match (go-containerregistry's remote layers do): they are not hashed again.
	Verified bool
}

// Layer is a converted layer, held in a temporary file until Remove.
type Layer struct {
	Path        string // the converted blob
	Digest      v1.Hash
	Size        int64
	DiffID      v1.Hash
	MediaType   types.MediaType
	Annotations map[string]string
	// TarBytes is the size of the source's uncompressed tar.
	TarBytes int64
}

// Remove deletes the converted blob's temporary file.
func (l *Layer) Remove() error { return os.Remove(l.Path) }

// Descriptor is the converted layer's manifest descriptor.
func (l *Layer) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: l.MediaType, Size: l.Size, Digest: l.Digest, Annotations: l.Annotations}
}

// ConvertLayer reads the compressed source blob src (gzip, zstd or a plain tar, told by its
// magic bytes), checks it against want, and converts it with c. dir holds the temporary files
// ("" = the system's). The uncompressed tar is spooled to a file removed on return; the
// converted blob stays in the returned Layer's file.
func ConvertLayer(ctx context.Context, src io.Reader, want Source, c Converter, oci bool, dir string) (*Layer, error) {
	tar, tarBytes, tarDigest, err := spool(ctx, src, want, dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tar.Close(); _ = os.Remove(tar.Name()) }()
	out, err := os.CreateTemp(dir, "flatbed-lazy-*.blob")
	if err != nil {
		return nil, fmt.Errorf("creating the converted blob's temporary file (check the temporary directory): %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = out.Close()
			_ = os.Remove(out.Name())
		}
	}()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(out, h)}
	conv, err := c.Convert(ctx, io.NewSectionReader(tar, 0, tarBytes), cw)
	if err != nil {
		return nil, fmt.Errorf("converting layer %s: %w", want.Digest, err)
	}
	if conv.DiffID.Hex == "" {
		conv.DiffID = tarDigest
	}
	if ck, ok := c.(Checker); ok {
		if err := ck.Check(io.NewSectionReader(out, 0, cw.n), conv); err != nil {
			return nil, fmt.Errorf("layer %s: %w", want.Digest, err)
		}
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("writing the converted blob of layer %s: %w", want.Digest, err)
	}
	keep = true
	return &Layer{
		Path:        out.Name(),
		Digest:      v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))},
		Size:        cw.n,
		DiffID:      conv.DiffID,
		MediaType:   LayerMediaType(c.Compression(), oci || c.NeedsOCI()),
		Annotations: conv.Annotations,
		TarBytes:    tarBytes,
	}, nil
}

// spool writes the uncompressed tar of src to a temporary file, checking the blob's digest
// and the tar's diff ID on the way, and returns the file, its size and its digest.
func spool(ctx context.Context, src io.Reader, want Source, dir string) (*os.File, int64, v1.Hash, error) {
	if want.Digest.Algorithm != "sha256" {
		return nil, 0, v1.Hash{}, fmt.Errorf("layer %s: only sha256 digests are converted", want.Digest)
	}
	blobHash := sha256.New()
	tee := layer.ContextReader(ctx, src)
	if !want.Verified {
		tee = io.TeeReader(tee, blobHash)
	}
	zr, _, err := layer.Decompress(tee, maxZstdWindow)
	if err != nil {
		return nil, 0, v1.Hash{}, fmt.Errorf("layer %s: %w", want.Digest, err)
	}
	defer zr.Close()
	f, err := os.CreateTemp(dir, "flatbed-lazy-*.tar")
	if err != nil {
		return nil, 0, v1.Hash{}, fmt.Errorf("creating a temporary file for layer %s (check the temporary directory): %w", want.Digest, err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	tarHash := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, tarHash), zr)
	if err != nil {
		return nil, 0, v1.Hash{}, fmt.Errorf("reading layer %s: %w", want.Digest, err)
	}
	// Drain what the decompressor left (padding after the end of the stream) so the blob's
	// digest covers every byte.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return nil, 0, v1.Hash{}, fmt.Errorf("reading layer %s: %w", want.Digest, err)
	}
	if got := hex.EncodeToString(blobHash.Sum(nil)); !want.Verified && got != want.Digest.Hex {
		return nil, 0, v1.Hash{}, fmt.Errorf("layer %s: the blob is sha256:%s, %w; fetch it again", want.Digest, got, ErrDigestMismatch)
	}
	got := hex.EncodeToString(tarHash.Sum(nil))
	if want.DiffID.Hex != "" && got != want.DiffID.Hex {
		return nil, 0, v1.Hash{}, fmt.Errorf("layer %s: its tar is sha256:%s, not the diff ID %s the config names (%w): the image is inconsistent", want.Digest, got, want.DiffID, ErrDigestMismatch)
	}
	ok = true
	return f, n, v1.Hash{Algorithm: "sha256", Hex: got}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
