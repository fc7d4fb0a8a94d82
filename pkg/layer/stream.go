package layer

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// ErrDigestMismatch is wrapped by Extract's error when the blob does not hash to the digest
// the manifest promised: bytes lost or changed on the way, so callers may retry the download.
// (A blob that matches while its tar stream does not match the config's diff_id is
// ErrMalformed instead: the image itself is inconsistent.)
var ErrDigestMismatch = errors.New("digest mismatch")

// digester hashes and counts what flows through it. It is the io.Writer side of an
// io.TeeReader, so verification costs no extra pass and no buffering.
type digester struct {
	algo string
	h    hash.Hash
	n    int64
}

// newDigester returns a digester for the algorithm of want ("sha256:<hex>", "sha512:<hex>");
// an empty want means "not checked" and hashes with sha256 so Meta still gets a value.
func newDigester(want string) (*digester, error) {
	if want == "" {
		return &digester{algo: "sha256", h: sha256.New()}, nil
	}
	algo, hx, ok := strings.Cut(want, ":")
	var d *digester
	switch algo {
	case "sha256":
		d = &digester{algo: algo, h: sha256.New()}
	case "sha512":
		d = &digester{algo: algo, h: sha512.New()}
	default:
		return nil, fmt.Errorf("unsupported digest %q", want)
	}
	if _, err := hex.DecodeString(hx); !ok || err != nil || len(hx) != 2*d.h.Size() {
		return nil, fmt.Errorf("malformed digest %q", want)
	}
	return d, nil
}

func (d *digester) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return d.h.Write(p)
}

func (d *digester) digest() string { return d.algo + ":" + hex.EncodeToString(d.h.Sum(nil)) }

// check compares with want, the layer digest (which also names the layer in the error).
func (d *digester) check(want string) error {
	if got := d.digest(); got != want {
		return fmt.Errorf("layer %s: compressed %w: expected %s, got %s", want, ErrDigestMismatch, want, got)
	}
	return nil
}

// ctxReader stops a long copy (one huge file, or the final drain) soon after ctx ends,
// not only between entries.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// errReader remembers the first read error so Extract can tell a corrupt stream (worth a
// digest check to explain it) from a file system error.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBzip2 = []byte("BZh")
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// decompress picks the decoder by magic bytes: registries and tools mislabel media types
// (gzip blobs under the plain tar type and the reverse are both seen in the wild).
// maxWindow bounds the memory of the zstd decoder (see newZstdReader).
func decompress(br *bufio.Reader, maxWindow int64) (io.ReadCloser, string, error) {
	head, err := br.Peek(6)
	if err != nil && err != io.EOF {
		return nil, "", err
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "gzip", err
		}
		return zr, "gzip", nil
	case bytes.HasPrefix(head, magicZstd):
		zr, err := newZstdReader(br, maxWindow)
		if err != nil {
			return nil, "zstd", err
		}
		return zr, "zstd", nil
	case bytes.HasPrefix(head, magicBzip2):
		return nil, "bzip2", errors.New("bzip2 layers are not supported")
	case bytes.HasPrefix(head, magicXz):
		return nil, "xz", errors.New("xz layers are not supported")
	}
	return io.NopCloser(br), "tar", nil
}
