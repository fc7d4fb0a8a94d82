package lazy

import (
	archivetar "archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"

	"flatbed.dev/pkg/layer"
)

// estargzParallelism fixes how eStargz splits a layer into sub-blobs: the same layer then
// gives the same blob on any machine, whatever its number of cores, so converted digests
// are reproducible.
const estargzParallelism = 4

// estargzSerialBelow is the size of tar below which a layer is written in one pass rather
// than built in parallel parts (a variable for the tests).
var estargzSerialBelow int64 = 128 << 20

// EstargzLevel is the gzip level of eStargz layers when Options.Level is 0: klauspost/compress's
// level 3 makes blobs as small as its default (5) does from application layers, cutting a
// quarter of the compression's CPU (BenchmarkConvertEstargz).
const EstargzLevel = 3

// EstargzArtifactType is the artifactType of an eStargz image pushed as a referrer.
const EstargzArtifactType = "application/vnd.flatbed.lazy.estargz.v1+json"

// ErrNotLazy is wrapped when a layer cannot be written in the format asked for, as with a
// hard link whose target is in a lower layer, which eStargz's TOC cannot name.
var ErrNotLazy = errors.New("the layer cannot be made lazy-pullable in this format")

type estargzConverter struct{ o Options }

func (estargzConverter) Compression() string  { return "gzip" }
func (estargzConverter) NeedsOCI() bool       { return false }
func (estargzConverter) ArtifactType() string { return EstargzArtifactType }

// Convert builds the eStargz blob with its TOC; prioritised files come first, followed by the
// prefetch landmark. A layer of less than estargzSerialBelow bytes without prioritised files
// is written in one pass straight to w (the layers of an image are converted side by side);
// a bigger one, or one with prioritised files, is built by the library's Build in
// estargzParallelism parts that it spools to temporary files, and read back once for its diff
// ID. Which way a layer takes depends only on its tar, so a layer gives the same blob
// whatever image it is in.
func (c estargzConverter) Convert(ctx context.Context, tar *io.SectionReader, w io.Writer) (Converted, error) {
	level := c.o.Level
	if level == 0 {
		level = EstargzLevel
	}
	gz, err := newFastGzip(level)
	if err != nil {
		return Converted{}, err
	}
	if len(c.o.PrioritizedFiles) == 0 && tar.Size() < estargzSerialBelow {
		if ok, err := plainTar(tar); err != nil {
			return Converted{}, err
		} else if ok {
			return c.serial(ctx, tar, w, gz)
		}
	}
	opts := []estargz.Option{estargz.WithContext(ctx), estargz.WithParallelism(estargzParallelism), estargz.WithCompression(gz)}
	if len(c.o.PrioritizedFiles) > 0 {
		var missing []string
		opts = append(opts, estargz.WithPrioritizedFiles(c.o.PrioritizedFiles), estargz.WithAllowPrioritizeNotFound(&missing))
	}
	blob, err := estargz.Build(tar, opts...)
	if err != nil {
		return Converted{}, fmt.Errorf("building the eStargz blob: %w", err)
	}
	defer blob.Close()
	if _, err := io.Copy(w, blob); err != nil {
		return Converted{}, fmt.Errorf("writing the eStargz blob: %w", err)
	}
	if err := blob.Close(); err != nil {
		return Converted{}, fmt.Errorf("closing the eStargz blob: %w", err)
	}
	diffID, err := v1.NewHash(blob.DiffID().String())
	if err != nil {
		return Converted{}, err
	}
	size, err := blob.UncompressedSize()
	if err != nil {
		return Converted{}, err
	}
	return estargzResult(diffID, blob.TOCDigest().String(), size), nil
}

// serial writes the eStargz blob in one pass, as Build lays out a layer without prioritised
// files in one part: the no-prefetch landmark, then the layer's entries, then the TOC. The
// writer hashes the uncompressed stream as it goes, so nothing is read back.
func (c estargzConverter) serial(ctx context.Context, tar *io.SectionReader, w io.Writer, gz *fastGzip) (Converted, error) {
	ew := estargz.NewWriterWithCompressor(w, gz)
	if err := ew.AppendTar(bytes.NewReader(noPrefetchTar)); err != nil {
		return Converted{}, fmt.Errorf("writing the eStargz landmark: %w", err)
	}
	if err := ew.AppendTar(layer.ContextReader(ctx, io.NewSectionReader(tar, 0, tar.Size()))); err != nil {
		return Converted{}, fmt.Errorf("writing the eStargz blob: %w", err)
	}
	toc, err := ew.Close()
	if err != nil {
		return Converted{}, fmt.Errorf("writing the eStargz TOC: %w", err)
	}
	diffID, err := v1.NewHash(ew.DiffID())
	if err != nil {
		return Converted{}, err
	}
	return estargzResult(diffID, toc.String(), gz.uncompressed.Load()), nil
}

func estargzResult(diffID v1.Hash, toc string, size int64) Converted {
	return Converted{DiffID: diffID, Annotations: map[string]string{
		estargz.TOCJSONDigestAnnotation:         toc,
		estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(size, 10),
	}}
}

// noPrefetchTar is a tar of the landmark Build puts first in a layer without prioritised
// files (stargz-snapshotter then prefetches nothing).
var noPrefetchTar = func() []byte {
	var b bytes.Buffer
	tw := archivetar.NewWriter(&b)
	_ = tw.WriteHeader(&archivetar.Header{Name: estargz.NoPrefetchLandmark, Typeflag: archivetar.TypeReg, Size: 1})
	_, _ = tw.Write([]byte{0xf}) // the library's landmarkContents
	_ = tw.Close()
	return b.Bytes()
}()

// plainTar says whether Build would take the tar's entries as they are: no name twice (Build
// keeps the last one, in its place), no landmark or TOC of an earlier conversion. It reads
// the headers only.
func plainTar(tar *io.SectionReader) (bool, error) {
	seen := map[string]struct{}{}
	tr := archivetar.NewReader(io.NewSectionReader(tar, 0, tar.Size()))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("reading the layer's tar: %w", err)
		}
		name := path.Clean("/" + h.Name)
		switch name {
		case "/" + estargz.NoPrefetchLandmark, "/" + estargz.PrefetchLandmark, "/" + estargz.TOCTarName:
			return false, nil
		}
		if _, dup := seen[name]; dup {
			return false, nil
		}
		seen[name] = struct{}{}
	}
}

// Check opens the written blob as stargz-snapshotter does before it mounts a layer lazily: a
// layer it cannot open (a hard link to a file of a lower layer, whose target its TOC must
// hold) is refused rather than published as eStargz.
func (estargzConverter) Check(blob *io.SectionReader, _ Converted) error {
	if _, err := estargz.Open(blob); err != nil {
		return fmt.Errorf("%w: an eStargz reader cannot open the converted layer: %w", ErrNotLazy, err)
	}
	return nil
}

// fastGzip is eStargz's gzip compression on klauspost/compress instead of the standard
// library's: the same format (a gzip member per chunk, the TOC and footer written by the
// estargz library itself) several times faster, with gzip writers reused across chunks.
type fastGzip struct {
	*estargz.GzipCompressor   // the TOC and footer
	*estargz.GzipDecompressor // footer and TOC parsing
	level                     int
	pool                      sync.Pool
	uncompressed              atomic.Int64 // bytes through Writer and the TOC
}

func newFastGzip(level int) (*fastGzip, error) {
	if _, err := gzip.NewWriterLevel(io.Discard, level); err != nil {
		return nil, fmt.Errorf("eStargz compression level %d: %w", level, err)
	}
	return &fastGzip{
		GzipCompressor:   estargz.NewGzipCompressorWithLevel(gzip.DefaultCompression),
		GzipDecompressor: &estargz.GzipDecompressor{},
		level:            level,
	}, nil
}

// Writer starts the gzip member of one chunk; Close ends it and hands the writer back.
func (f *fastGzip) Writer(w io.Writer) (estargz.WriteFlushCloser, error) {
	if zw, ok := f.pool.Get().(*gzip.Writer); ok {
		zw.Reset(w)
		return &pooledGzip{Writer: zw, f: f}, nil
	}
	zw, err := gzip.NewWriterLevel(w, f.level)
	if err != nil {
		return nil, err
	}
	return &pooledGzip{Writer: zw, f: f}, nil
}

// WriteTOCAndFooter writes them as the library does, counting the TOC's uncompressed bytes
// (they go through diffHash).
func (f *fastGzip) WriteTOCAndFooter(w io.Writer, off int64, toc *estargz.JTOC, diffHash hash.Hash) (digest.Digest, error) {
	if diffHash != nil {
		diffHash = countingHash{diffHash, &f.uncompressed}
	}
	return f.GzipCompressor.WriteTOCAndFooter(w, off, toc, diffHash)
}

type countingHash struct {
	hash.Hash
	n *atomic.Int64
}

func (c countingHash) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.Hash.Write(p)
}

// Reader decompresses (the blob's diff ID is computed by reading it back).
func (f *fastGzip) Reader(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }

type pooledGzip struct {
	*gzip.Writer
	f *fastGzip
}

func (p *pooledGzip) Write(b []byte) (int, error) {
	n, err := p.Writer.Write(b)
	p.f.uncompressed.Add(int64(n))
	return n, err
}

func (p *pooledGzip) Close() error {
	if p.Writer == nil {
		return nil
	}
	err := p.Writer.Close()
	p.f.pool.Put(p.Writer)
	p.Writer = nil
	return err
}
