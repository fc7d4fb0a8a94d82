package ingester

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/pkg/registry"
)

// openBlob opens the compressed layer stream. Only the stream is read: the digest is checked
// by layer.Extract as the bytes go by, never by holding the blob.
func openBlob(ref name.Digest, ro []remote.Option) (io.ReadCloser, error) {
	l, err := remote.Layer(ref, ro...)
	if err != nil {
		return nil, registry.Explain(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, registry.Explain(err)
	}
	return rc, nil
}

// blobStream counts and hashes the blob as it arrives and remembers how the stream ended,
// so that a failed unpack can be told apart: a download that broke off, bytes that do not
// match the digest, or a layer that is bad as published.
type blobStream struct {
	r       io.Reader
	fetched *atomic.Int64
	h       hash.Hash // nil for digests other than sha256
	n       int64
	end     error // the first error (io.EOF included) the stream returned

	progress func(n int64) // told of the bytes read, when set
}

func newBlobStream(r io.Reader, digest string, fetched *atomic.Int64) *blobStream {
	b := &blobStream{r: r, fetched: fetched}
	if strings.HasPrefix(digest, "sha256:") {
		b.h = sha256.New()
	}
	return b
}

func (b *blobStream) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	b.fetched.Add(int64(n))
	if b.progress != nil && n > 0 {
		b.progress(int64(n))
	}
	if b.h != nil {
		b.h.Write(p[:n])
	}
	if err != nil && b.end == nil {
		b.end = err
	}
	return n, err
}

// explain turns a failed unpack into what happened to the download, when the download is
// what went wrong; otherwise it returns nil. A blob that did not arrive as published (cut
// short, reset, stalled, other bytes than its digest names) may be a fault on the way: the
// error is registry.Transient, so it is fetched again.
func (b *blobStream) explain(l events.Layer, image string) error {
	switch {
	case b.n > l.Size:
		return registry.Transient(fmt.Errorf("the download of layer %s of %s went on past the %d bytes its descriptor gives: the registry sent other bytes than the manifest names",
			l.Digest, image, l.Size))
	case b.end == nil:
		return nil // unpacking stopped before the stream ended: the layer itself is the problem
	case b.end != io.EOF && registry.Temporary(b.end):
		return registry.Transient(fmt.Errorf("the download of layer %s of %s broke off after %d of %d bytes: %s (%w)",
			l.Digest, image, b.n, l.Size, registry.Reason(b.end), b.end))
	case l.Size > 0 && b.n < l.Size:
		return registry.Transient(fmt.Errorf("the download of layer %s of %s ended after %d of %d bytes: the registry sent a truncated blob",
			l.Digest, image, b.n, l.Size))
	case b.h != nil:
		if got := "sha256:" + hex.EncodeToString(b.h.Sum(nil)); got != l.Digest {
			return registry.Transient(fmt.Errorf("layer %s of %s does not match its digest (expected %s, got %s): the registry sent other bytes than the manifest names",
				l.Digest, image, l.Digest, got))
		}
	}
	return nil
}

func mkdir(p string) error {
	if err := os.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}
