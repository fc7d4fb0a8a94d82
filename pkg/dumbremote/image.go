package dumbremote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Artifact opens the image or index desc names on the remote as go-containerregistry reads
// images (v1.Image or v1.ImageIndex), streaming each blob from the remote when it is read.
// An image with layers kept recompressed (Zstd) is given with a manifest naming those
// layers (an OCI manifest: Docker's media types have no zstd), and an index listing such an
// image with that manifest; the config, and so the image id, is the original's. Everything
// else is byte for byte what was exported. It fails when a blob the image needs is missing.
func (r *Remote) Artifact(ctx context.Context, desc v1.Descriptor) (remote.Taggable, error) {
	art, _, err := r.artifact(ctx, desc)
	return art, err
}

func (r *Remote) artifact(ctx context.Context, desc v1.Descriptor) (remote.Taggable, v1.Descriptor, error) {
	raw, err := r.ReadBlob(ctx, desc.Digest)
	if err != nil {
		return nil, desc, err
	}
	if desc.MediaType.IsIndex() {
		return r.openIndex(ctx, desc, raw)
	}
	if !desc.MediaType.IsImage() {
		return nil, desc, fmt.Errorf("%s on %s is a %s, neither an image nor an index", desc.Digest, r, desc.MediaType)
	}
	return r.openImage(ctx, desc, raw)
}

// openImage checks that every blob of the manifest raw is on the remote, as it is or
// recompressed, and rewrites the manifest for the recompressed ones.
func (r *Remote) openImage(ctx context.Context, desc v1.Descriptor, raw []byte) (v1.Image, v1.Descriptor, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, desc, fmt.Errorf("manifest %s on %s: %w", desc.Digest, r, err)
	}
	if ok, err := r.HasBlob(ctx, m.Config.Digest); err != nil {
		return nil, desc, err
	} else if !ok {
		return nil, desc, fmt.Errorf("the config %s of %s is not on %s: %w", m.Config.Digest, desc.Digest, r, errNotFound)
	}
	rewritten := false
	for i, l := range m.Layers {
		ok, err := r.HasBlob(ctx, l.Digest)
		if err != nil {
			return nil, desc, err
		}
		if ok {
			continue
		}
		rec, found, err := r.recompressedOf(ctx, l.Digest)
		if err != nil {
			return nil, desc, err
		}
		if found {
			found, err = r.HasBlob(ctx, rec.Digest)
		}
		if err != nil {
			return nil, desc, err
		}
		if !found {
			return nil, desc, fmt.Errorf("layer %s of %s is not on %s: %w", l.Digest, desc.Digest, r, errNotFound)
		}
		m.Layers[i] = v1.Descriptor{MediaType: rec.MediaType, Size: rec.Size, Digest: rec.Digest, Annotations: l.Annotations}
		rewritten = true
	}
	if rewritten {
		ociManifest(m)
		if raw, err = json.Marshal(m); err != nil {
			return nil, desc, err
		}
		h, _, _ := v1.SHA256(bytes.NewReader(raw))
		desc = v1.Descriptor{MediaType: m.MediaType, Digest: h, Size: int64(len(raw)), Platform: desc.Platform, Annotations: desc.Annotations}
	}
	img, err := partial.CompressedToImage(&imageCore{r: r, ctx: ctx, raw: raw, m: m})
	return img, desc, err
}

// ociManifest turns a Docker manifest into the OCI one with the same content.
func ociManifest(m *v1.Manifest) {
	m.MediaType = types.OCIManifestSchema1
	if m.Config.MediaType == types.DockerConfigJSON {
		m.Config.MediaType = types.OCIConfigJSON
	}
	for i, l := range m.Layers {
		switch l.MediaType {
		case types.DockerLayer:
			m.Layers[i].MediaType = types.OCILayer
		case types.DockerUncompressedLayer:
			m.Layers[i].MediaType = types.OCIUncompressedLayer
		case types.DockerForeignLayer:
			m.Layers[i].MediaType = types.OCIRestrictedLayer
		}
	}
}

// imageCore is an image on the remote, as partial.CompressedToImage completes it.
type imageCore struct {
	r   *Remote
	ctx context.Context
	raw []byte
	m   *v1.Manifest
}

func (c *imageCore) RawConfigFile() ([]byte, error) { return c.r.ReadBlob(c.ctx, c.m.Config.Digest) }
func (c *imageCore) MediaType() (types.MediaType, error) {
	if c.m.MediaType != "" {
		return c.m.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}
func (c *imageCore) RawManifest() ([]byte, error) { return c.raw, nil }

func (c *imageCore) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range c.m.Layers {
		if l.Digest == h {
			return &blobLayer{r: c.r, ctx: c.ctx, d: l}, nil
		}
	}
	if c.m.Config.Digest == h {
		return &blobLayer{r: c.r, ctx: c.ctx, d: c.m.Config}, nil
	}
	return nil, fmt.Errorf("blob %s is not in manifest", h)
}

// blobLayer is a blob on the remote as a compressed layer.
type blobLayer struct {
	r   *Remote
	ctx context.Context
	d   v1.Descriptor
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *blobLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	return l.r.OpenBlob(l.ctx, l.d.Digest, l.d.Size)
}

// openIndex opens every manifest an index lists, and rewrites the index when one of them
// was rewritten.
func (r *Remote) openIndex(ctx context.Context, desc v1.Descriptor, raw []byte) (v1.ImageIndex, v1.Descriptor, error) {
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, desc, fmt.Errorf("index %s on %s: %w", desc.Digest, r, err)
	}
	idx := &index{children: map[v1.Hash]remote.Taggable{}}
	rewritten := false
	for i, m := range im.Manifests {
		child, d, err := r.artifact(ctx, m)
		if err != nil {
			return nil, desc, fmt.Errorf("manifest %s of index %s: %w", m.Digest, desc.Digest, err)
		}
		if d.Digest != m.Digest {
			im.Manifests[i] = d
			rewritten = true
		}
		idx.children[d.Digest] = child
	}
	if rewritten {
		if raw, err = json.Marshal(im); err != nil {
			return nil, desc, err
		}
		h, _, _ := v1.SHA256(bytes.NewReader(raw))
		desc = v1.Descriptor{MediaType: desc.MediaType, Digest: h, Size: int64(len(raw)), Platform: desc.Platform, Annotations: desc.Annotations}
	}
	idx.raw, idx.m, idx.desc = raw, im, desc
	return idx, desc, nil
}

// index is an index on the remote with its manifests opened.
type index struct {
	raw      []byte
	m        *v1.IndexManifest
	desc     v1.Descriptor
	children map[v1.Hash]remote.Taggable
}

func (x *index) MediaType() (types.MediaType, error)       { return x.desc.MediaType, nil }
func (x *index) Digest() (v1.Hash, error)                  { return x.desc.Digest, nil }
func (x *index) Size() (int64, error)                      { return x.desc.Size, nil }
func (x *index) IndexManifest() (*v1.IndexManifest, error) { return x.m, nil }
func (x *index) RawManifest() ([]byte, error)              { return x.raw, nil }

func (x *index) Image(h v1.Hash) (v1.Image, error) {
	if img, ok := x.children[h].(v1.Image); ok {
		return img, nil
	}
	return nil, fmt.Errorf("the index lists no image %s", h)
}

func (x *index) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	if idx, ok := x.children[h].(v1.ImageIndex); ok {
		return idx, nil
	}
	return nil, fmt.Errorf("the index lists no index %s", h)
}
