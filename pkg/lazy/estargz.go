package lazy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// estargzParallelism fixes how eStargz splits a layer into sub-blobs: the same layer then
// gives the same blob on any machine, whatever its number of cores, so converted digests
// are reproducible.
const estargzParallelism = 4

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
// prefetch landmark. The library spools its parts to temporary files, not memory.
func (c estargzConverter) Convert(ctx context.Context, tar *io.SectionReader, w io.Writer) (Converted, error) {
	opts := []estargz.Option{estargz.WithContext(ctx), estargz.WithParallelism(estargzParallelism)}
	if c.o.Level != 0 {
		opts = append(opts, estargz.WithCompressionLevel(c.o.Level))
	}
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
	return Converted{DiffID: diffID, Annotations: map[string]string{
		estargz.TOCJSONDigestAnnotation:         blob.TOCDigest().String(),
		estargz.StoreUncompressedSizeAnnotation: strconv.FormatInt(size, 10),
	}}, nil
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
