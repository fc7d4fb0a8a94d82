package dumbremote

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"flatbed.dev/pkg/imageref"
)

// Compression is how layers are kept on the remote.
type Compression string

const (
	// AsIs keeps every blob byte for byte: an import gives every digest back.
	AsIs Compression = ""
	// Zstd keeps gzip and uncompressed layers recompressed with zstd, recorded in
	// recompressed/; an import gives a valid image with the same config (image id), whose
	// manifest names the zstd layers (so its digest differs from the original's).
	Zstd Compression = "zstd"
)

// ParseCompression reads --compress: "" or "none" (as is) or "zstd".
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "", "none":
		return AsIs, nil
	case "zstd":
		return Zstd, nil
	}
	return "", fmt.Errorf("compression %q: choose none or zstd", s)
}

// Stats counts what an export wrote and what the remote had already.
type Stats struct {
	Uploaded int   // blobs written
	Present  int   // blobs the remote had (not transferred)
	Bytes    int64 // bytes written
}

// exporter is one export's state.
type exporter struct {
	r        *Remote
	compress Compression
	uploaded atomic.Int64
	present  atomic.Int64
	bytes    atomic.Int64
	ids      []v1.Hash // config and child manifest digests, for ids/
	mu       sync.Mutex
}

// StaleAge is how old a temporary upload must be before an export removes it as a killed
// writer's: far longer than any one blob takes to upload.
var StaleAge = 24 * time.Hour

// layerJobs is how many layers of one image are written at once.
const layerJobs = 3

// Export writes art (an image or an index, every platform; from a registry or anywhere) to
// the remote and points name's tag at it: every blob not on the remote yet, each checked as it
// streams, then the manifests, then the reference. It returns the descriptor of art's
// manifest or index, whose digest is art's, and what it wrote.
func (r *Remote) Export(ctx context.Context, name imageref.Ref, art remote.Taggable, compress Compression) (v1.Descriptor, Stats, error) {
	if r.Location.ReadOnly() {
		return v1.Descriptor{}, Stats{}, &PermanentError{fmt.Errorf("%s is read-only (served over HTTP): export to its dir:// or s3:// form", r)}
	}
	if err := r.ensureLayout(ctx); err != nil {
		return v1.Descriptor{}, Stats{}, err
	}
	// What killed writers left half-uploaded (S3's tmp/), once it is surely nobody's.
	if _, err := r.b.sweep(ctx, StaleAge); err != nil {
		return v1.Descriptor{}, Stats{}, err
	}
	e := &exporter{r: r, compress: compress}
	var desc v1.Descriptor
	var err error
	switch a := art.(type) {
	case v1.ImageIndex:
		desc, err = e.index(ctx, a)
	case v1.Image:
		desc, err = e.image(ctx, a)
	default:
		err = fmt.Errorf("exporting %T: neither an image nor an index", art)
	}
	st := Stats{Uploaded: int(e.uploaded.Load()), Present: int(e.present.Load()), Bytes: e.bytes.Load()}
	if err != nil {
		return desc, st, fmt.Errorf("exporting %s to %s: %w", name.Registry+"/"+name.Repository+name.Reference(), r, err)
	}
	if err := r.writeRef(ctx, name, desc, e.ids); err != nil {
		return desc, st, err
	}
	return desc, st, nil
}

func (e *exporter) count(wrote bool, n int64) {
	if wrote {
		e.uploaded.Add(1)
		e.bytes.Add(n)
		return
	}
	e.present.Add(1)
}

func (e *exporter) putRaw(ctx context.Context, raw []byte) (v1.Hash, error) {
	h, wrote, err := e.r.putBytes(ctx, raw)
	e.count(wrote, int64(len(raw)))
	return h, err
}

// image writes an image's layers, config and manifest, in that order.
func (e *exporter) image(ctx context.Context, img v1.Image) (v1.Descriptor, error) {
	m, err := img.Manifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(layerJobs)
	for _, l := range m.Layers {
		g.Go(func() error { return e.layer(gctx, img, l) })
	}
	if err := g.Wait(); err != nil {
		return v1.Descriptor{}, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, err
	}
	ch, err := e.putRaw(ctx, cfg)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if ch != m.Config.Digest {
		return v1.Descriptor{}, fmt.Errorf("the config hashes to %s, not %s as the manifest says", ch, m.Config.Digest)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, err := e.putRaw(ctx, raw)
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	e.mu.Lock()
	e.ids = append(e.ids, m.Config.Digest)
	e.mu.Unlock()
	return v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}, nil
}

// layer writes one layer as it is, or recompressed.
func (e *exporter) layer(ctx context.Context, img v1.Image, d v1.Descriptor) error {
	l, err := img.LayerByDigest(d.Digest)
	if err != nil {
		return fmt.Errorf("layer %s: %w", d.Digest, err)
	}
	if e.compress == Zstd && recompressible(d.MediaType) {
		wrote, n, err := e.r.putRecompressed(ctx, d, l)
		e.count(wrote, n)
		return err
	}
	wrote, err := e.r.PutBlob(ctx, d, func() (io.ReadCloser, error) { return l.Compressed() })
	e.count(wrote, d.Size)
	return err
}

// index writes each manifest an index lists (images and nested indexes), then the index.
func (e *exporter) index(ctx context.Context, idx v1.ImageIndex) (v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, m := range im.Manifests {
		switch {
		case m.MediaType.IsIndex():
			child, err := idx.ImageIndex(m.Digest)
			if err != nil {
				return v1.Descriptor{}, err
			}
			if _, err := e.index(ctx, child); err != nil {
				return v1.Descriptor{}, err
			}
		case m.MediaType.IsImage():
			child, err := idx.Image(m.Digest)
			if err != nil {
				return v1.Descriptor{}, err
			}
			if _, err := e.image(ctx, child); err != nil {
				return v1.Descriptor{}, fmt.Errorf("manifest %s of the index: %w", m.Digest, err)
			}
		default:
			return v1.Descriptor{}, fmt.Errorf("manifest %s of the index is a %s, which a remote does not keep", m.Digest, m.MediaType)
		}
		e.mu.Lock()
		e.ids = append(e.ids, m.Digest)
		e.mu.Unlock()
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, err := e.putRaw(ctx, raw)
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, err := idx.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}, nil
}
