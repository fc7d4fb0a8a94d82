package dumbremote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Remote is an opened remote.
type Remote struct {
	Location Location
	b        backend
	tempDir  string
}

// Option configures Open.
type Option func(*Remote, *openOptions)

type openOptions struct{ transport http.RoundTripper }

// WithTransport sends an S3 remote's requests through t.
func WithTransport(t http.RoundTripper) Option {
	return func(_ *Remote, o *openOptions) { o.transport = t }
}

// WithTempDir is where layers are recompressed before they are uploaded (--compress zstd);
// the default is os.TempDir().
func WithTempDir(dir string) Option {
	return func(r *Remote, _ *openOptions) { r.tempDir = dir }
}

// PermanentError is a remote's answer that no retry can change: a missing bucket, refused
// credentials, a remote that is not one.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Open opens the remote s (see ParseLocation). A directory remote is created when missing.
func Open(ctx context.Context, s string, opts ...Option) (*Remote, error) {
	loc, err := ParseLocation(s)
	if err != nil {
		return nil, &PermanentError{err}
	}
	r := &Remote{Location: loc, tempDir: os.TempDir()}
	o := &openOptions{}
	for _, opt := range opts {
		opt(r, o)
	}
	switch loc.Scheme {
	case "dir":
		if err := os.MkdirAll(loc.Path, 0o755); err != nil {
			return nil, &PermanentError{fmt.Errorf("creating the remote %s: %w", loc, err)}
		}
		r.b = dirBackend{root: loc.Path}
	case "s3":
		if r.b, err = newS3(loc, o.transport); err != nil {
			return nil, &PermanentError{err}
		}
	default:
		r.b = newHTTP(loc, o.transport)
	}
	return r, nil
}

// String is the remote as it was given, without credentials (it never has any).
func (r *Remote) String() string { return r.Location.String() }

const (
	layoutKey = "oci-layout"
	indexKey  = "index.json"
	sidecar   = ".sha256"
	// maxSmall bounds what is read whole into memory: manifests, indexes, configs, refs.
	maxSmall = 4 << 20
)

func blobKey(h v1.Hash) string         { return "blobs/" + h.Algorithm + "/" + h.Hex }
func sidecarKey(h v1.Hash) string      { return blobKey(h) + sidecar }
func recompressedKey(h v1.Hash) string { return "recompressed/" + h.Algorithm + "/" + h.Hex }
func idKey(hex string) string          { return "ids/" + hex[:2] + "/" + hex }

// sidecarLine is a blob's sidecar: sha256sum's format, so `sha256sum -c *.sha256` in
// blobs/sha256 of a directory remote checks every blob.
func sidecarLine(h v1.Hash) []byte { return []byte(h.Hex + "  " + h.Hex + "\n") }

// HasBlob reports whether the blob h is on the remote, whole and checked: its sidecar is.
func (r *Remote) HasBlob(ctx context.Context, h v1.Hash) (bool, error) {
	return r.b.exists(ctx, sidecarKey(h))
}

// PutBlob writes the blob desc names unless the remote has it, reading it from open, and
// reports whether it wrote it. What open gives is checked against desc's digest and size
// while it streams; a mismatch fails and leaves nothing under the blob's name.
func (r *Remote) PutBlob(ctx context.Context, desc v1.Descriptor, open func() (io.ReadCloser, error)) (bool, error) {
	if ok, err := r.HasBlob(ctx, desc.Digest); err != nil || ok {
		return false, err
	}
	rc, err := open()
	if err != nil {
		return false, err
	}
	defer rc.Close()
	cr, err := newChecked(rc, desc.Digest, desc.Size)
	if err != nil {
		return false, err
	}
	err = r.b.put(ctx, blobKey(desc.Digest), cr, desc.Size)
	if err == nil && cr.bad != nil {
		// The backend did not see the error: undo. No sidecar names it, so no reader used it.
		err = cr.bad
		if rmErr := r.b.remove(ctx, blobKey(desc.Digest)); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
	}
	if err != nil {
		return false, fmt.Errorf("writing blob %s to %s: %w", desc.Digest, r, err)
	}
	if err := r.b.put(ctx, sidecarKey(desc.Digest), bytes.NewReader(sidecarLine(desc.Digest)), int64(len(sidecarLine(desc.Digest)))); err != nil {
		return false, fmt.Errorf("writing the checksum of blob %s to %s: %w", desc.Digest, r, err)
	}
	return true, nil
}

// putBytes writes a small blob (a manifest, index or config) unless the remote has it.
func (r *Remote) putBytes(ctx context.Context, b []byte) (v1.Hash, bool, error) {
	h, _, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return h, false, err
	}
	ok, err := r.PutBlob(ctx, v1.Descriptor{Digest: h, Size: int64(len(b))}, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	return h, ok, err
}

// OpenBlob opens the blob h; what it reads is checked against h and size (-1: unknown) as
// it streams, and a mismatch is an error at its end.
func (r *Remote) OpenBlob(ctx context.Context, h v1.Hash, size int64) (io.ReadCloser, error) {
	rc, err := r.b.get(ctx, blobKey(h))
	if err != nil {
		return nil, fmt.Errorf("blob %s on %s: %w", h, r, err)
	}
	cr, err := newChecked(rc, h, size)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{cr, rc}, nil
}

// ReadBlob reads a small blob whole (a manifest, an index, a config), checked.
func (r *Remote) ReadBlob(ctx context.Context, h v1.Hash) ([]byte, error) {
	rc, err := r.OpenBlob(ctx, h, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSmall+1))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s on %s: %w", h, r, err)
	}
	if len(b) > maxSmall {
		return nil, fmt.Errorf("blob %s on %s is over %d bytes: not a manifest or config", h, r, maxSmall)
	}
	return b, nil
}

// errDamaged marks a small key that is not JSON: damaged, or being written by a server whose
// writes are not atomic (s3rver).
var errDamaged = errors.New("not what flatbed writes")

// readSmall reads a small key (a reference, an id, a record) as JSON into v.
func (r *Remote) readSmall(ctx context.Context, key string, v any) error {
	rc, err := r.b.get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSmall))
	if err != nil {
		return fmt.Errorf("reading %s on %s: %w", key, r, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s on %s is damaged: %w: %w", key, r, errDamaged, err)
	}
	return nil
}

func (r *Remote) writeSmall(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err := r.b.put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("writing %s to %s: %w", key, r, err)
	}
	return nil
}

// ensureLayout writes oci-layout once.
func (r *Remote) ensureLayout(ctx context.Context) error {
	if ok, err := r.b.exists(ctx, layoutKey); err != nil || ok {
		return err
	}
	return r.writeSmall(ctx, layoutKey, map[string]string{"imageLayoutVersion": "1.0.0"})
}

// checked reads r, hashing it; at its end a digest or size that is not the one wanted is an
// error instead of io.EOF, and the bytes of that last read are withheld, so that a reader
// that stops at the size it was told (io.ReadFull in an S3 upload) still sees the error. The
// error is kept (bad) for the writer to undo what it wrote.
type checked struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want v1.Hash
	size int64
	bad  error
}

func newChecked(r io.Reader, want v1.Hash, size int64) (*checked, error) {
	if want.Algorithm != "sha256" || len(want.Hex) != 64 {
		return nil, fmt.Errorf("digest %q: only sha256 digests are kept on a remote", want)
	}
	return &checked{r: r, h: sha256.New(), want: want, size: size}, nil
}

func (c *checked) Read(p []byte) (int, error) {
	if c.bad != nil {
		return 0, c.bad
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.h.Write(p[:n])
	switch {
	case c.size >= 0 && c.n > c.size:
		c.bad = fmt.Errorf("blob %s: more than its %d bytes", c.want, c.size)
	case errors.Is(err, io.EOF) || c.size >= 0 && c.n == c.size:
		if got := hex.EncodeToString(c.h.Sum(nil)); got != c.want.Hex {
			c.bad = fmt.Errorf("blob %s: the content hashes to sha256:%s", c.want, got)
		} else if c.size >= 0 && c.n != c.size {
			c.bad = fmt.Errorf("blob %s: %d bytes, not %d", c.want, c.n, c.size)
		}
	}
	if c.bad != nil {
		return 0, c.bad
	}
	return n, err
}

// shardOK reports whether s is lower-case hex, as the keys of ids/ are.
func shardOK(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdef") == ""
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
