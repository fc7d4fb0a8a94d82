package imagegen

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Named is an image with the repository path and tag it is published under.
type Named struct {
	Name  string   // repository path, e.g. "corpus/whiteouts"
	Tag   string   // tag, e.g. "v1"
	Image v1.Image // the image
	// Twin is, for a zstd image, the Name of its gzip twin (same Tag, identical
	// uncompressed layers and file content); "" otherwise.
	Twin string
}

// Ref returns "Name:Tag".
func (n Named) Ref() string { return n.Name + ":" + n.Tag }

// Compression of the layers of a generated image.
type compressionKind int

const (
	gz compressionKind = iota
	zst
)

type layerSpec struct {
	comment string // history CreatedBy
	entries []ent
}

type imageSpec struct {
	name, tag string
	docker    bool // Docker v2 schema 2 media types instead of OCI
	comp      compressionKind
	env       []string
	cmd       []string
	labels    map[string]string
	layers    []layerSpec
}

// build turns a spec into an image; every step is deterministic.
func build(s imageSpec) (v1.Image, error) {
	img := empty.Image
	layerMT := types.OCILayer
	if s.docker {
		img = mutate.MediaType(img, types.DockerManifestSchema2)
		img = mutate.ConfigMediaType(img, types.DockerConfigJSON)
		layerMT = types.DockerLayer
	} else {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	if s.comp == zst {
		if s.docker {
			return nil, fmt.Errorf("%s: zstd needs OCI media types", s.name)
		}
		layerMT = types.OCILayerZStd
	}
	cfg := &v1.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      v1.Time{Time: Epoch},
		Config: v1.Config{
			Env:        s.env,
			Cmd:        s.cmd,
			Labels:     s.labels,
			WorkingDir: "/",
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img, err := mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, 0, len(s.layers))
	for i, ls := range s.layers {
		l, err := makeLayer(ls.entries, s.comp, layerMT)
		if err != nil {
			return nil, fmt.Errorf("%s layer %d: %w", s.name, i, err)
		}
		adds = append(adds, mutate.Addendum{
			Layer:     l,
			MediaType: layerMT,
			History: v1.History{
				Created:   v1.Time{Time: Epoch},
				CreatedBy: "imagegen: " + ls.comment,
			},
		})
	}
	return mutate.Append(img, adds...)
}

// makeLayer builds the tar and compresses it. (tarball.LayerFromOpener is
// not used: its descriptor carries an empty, non-nil Annotations map that
// makes validate.Image report a manifest mismatch.)
func makeLayer(entries []ent, comp compressionKind, mt types.MediaType) (v1.Layer, error) {
	raw, err := buildTar(entries)
	if err != nil {
		return nil, err
	}
	var blob []byte
	if comp == zst {
		blob, err = zstdBytes(raw)
	} else {
		blob, err = gzipBytes(raw)
	}
	if err != nil {
		return nil, err
	}
	l := &memLayer{raw: raw, blob: blob, mt: mt}
	if l.digest, _, err = v1.SHA256(bytes.NewReader(blob)); err != nil {
		return nil, err
	}
	if l.diffID, _, err = v1.SHA256(bytes.NewReader(raw)); err != nil {
		return nil, err
	}
	return l, nil
}

// memLayer is a layer held in memory: the tar and its compressed form.
type memLayer struct {
	raw, blob      []byte
	digest, diffID v1.Hash
	mt             types.MediaType
}

func (l *memLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.raw)), nil
}

// gzipBytes compresses with the standard library (no header name or mtime: deterministic).
func gzipBytes(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// zstdBytes compresses with a single-threaded encoder (deterministic).
func zstdBytes(raw []byte) ([]byte, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	return enc.EncodeAll(raw, nil), nil
}

// mustBuild builds every spec; the specs are constants, so an error is a bug.
func mustBuild(specs []imageSpec, twins map[string]string) []Named {
	out := make([]Named, 0, len(specs))
	for _, s := range specs {
		img, err := build(s)
		if err != nil {
			panic("imagegen: " + err.Error())
		}
		out = append(out, Named{Name: s.name, Tag: s.tag, Image: img, Twin: twins[s.name]})
	}
	return out
}
