package lazy

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The built-in formats, as the CLI, the events and the dedup keys spell them.
const (
	Estargz     = "estargz"
	ZstdChunked = "zstd-chunked"
)

// Converter makes one lazy-pull format out of a layer's uncompressed tar.
type Converter interface {
	// Convert writes the converted blob of the uncompressed tar to w. The tar is seekable (a
	// spooled file) for formats that need two passes.
	Convert(ctx context.Context, tar *io.SectionReader, w io.Writer) (Converted, error)
	// Compression is what the converted blob is compressed with, "gzip" or "zstd": it
	// decides the layer's media type.
	Compression() string
	// NeedsOCI says the format has no Docker media type (zstd), so images are written with
	// OCI media types whatever was asked.
	NeedsOCI() bool
	// ArtifactType is the artifactType of a converted manifest pushed as a referrer.
	ArtifactType() string
}

// Checker is a Converter that can check a blob it wrote as its format's readers open it;
// ConvertLayer calls it on every converted blob.
type Checker interface {
	Check(blob *io.SectionReader, c Converted) error
}

// Converted is what a converter tells of a blob it wrote.
type Converted struct {
	// DiffID is the digest of the converted blob uncompressed (the config's rootfs.diff_ids);
	// zero when that is the tar converted (ConvertLayer has its digest).
	DiffID v1.Hash
	// Annotations go on the layer's descriptor (TOC digests and positions).
	Annotations map[string]string
}

// Options are the settings of a format.
type Options struct {
	// PrioritizedFiles are the paths (as in the layer, e.g. "bin/sh") eStargz puts first and
	// marks for prefetch; paths a layer lacks are ignored.
	PrioritizedFiles []string
	// Level is the compression level; 0 takes the format's default.
	Level int
}

// Factory makes a converter of one format.
type Factory func(Options) Converter

var (
	mu      sync.RWMutex
	formats = map[string]Factory{
		Estargz:     func(o Options) Converter { return estargzConverter{o} },
		ZstdChunked: func(o Options) Converter { return zstdChunkedConverter{o} },
	}
)

// Register adds a format (say, "overlaybd" backed by overlaybd's tools) under name.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	formats[name] = f
}

// Formats lists the formats that can be asked for, sorted.
func Formats() []string {
	mu.RLock()
	defer mu.RUnlock()
	return slices.Sorted(maps.Keys(formats))
}

// New returns the converter of format.
func New(format string, o Options) (Converter, error) {
	mu.RLock()
	f, ok := formats[format]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("lazy-pull format %q is not one flatbed makes (choose from %s)", format, strings.Join(Formats(), ", "))
	}
	return f(o), nil
}

// LayerMediaType is the media type of a layer compressed with compression ("gzip" or
// "zstd"), in OCI or Docker terms; zstd has OCI's only.
func LayerMediaType(compression string, oci bool) types.MediaType {
	switch {
	case compression == "zstd":
		return types.OCILayerZStd
	case oci:
		return types.OCILayer
	}
	return types.DockerLayer
}
