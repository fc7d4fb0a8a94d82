package ingester

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/pkg/registry"
)

// openBlob opens the compressed layer stream. Only the stream is read: the digest is checked
// by layer.Extract as the bytes go by, never by holding the blob.
func openBlob(ctx context.Context, ref name.Digest, ropts []registry.Option) (io.ReadCloser, error) {
	l, err := remote.Layer(ref, registry.Options(ctx, ropts...)...)
	if err != nil {
		return nil, fmt.Errorf("fetching layer %s: %w", ref, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("fetching layer %s: %w", ref, err)
	}
	return rc, nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func mkdir(p string) error {
	if err := os.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	return nil
}
