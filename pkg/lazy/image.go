package lazy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Shape says how a converted image is written.
type Shape struct {
	// OCI writes OCI media types (a Docker source is written as Docker otherwise, unless the
	// format has no Docker media type).
	OCI bool
	// Subject, when set, makes the converted manifest or index a referrer of the original:
	// its subject field points at it and ArtifactType names the format. Referrers are OCI,
	// so a subject implies OCI.
	Subject      *v1.Descriptor
	ArtifactType string
}

// ConfigMediaType is the media type of the converted image's config.
func (s Shape) ConfigMediaType() types.MediaType {
	if s.OCI || s.Subject != nil {
		return types.OCIConfigJSON
	}
	return types.DockerConfigJSON
}

// RewriteConfig returns the image config raw with rootfs.diff_ids replaced by diffIDs, every
// other field kept as it was (including ones this program does not know).
func RewriteConfig(raw []byte, diffIDs []v1.Hash) ([]byte, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("reading the image config: %w", err)
	}
	var rootfs map[string]json.RawMessage
	if r, ok := cfg["rootfs"]; ok {
		if err := json.Unmarshal(r, &rootfs); err != nil {
			return nil, fmt.Errorf("reading the image config's rootfs: %w", err)
		}
	}
	if rootfs == nil {
		rootfs = map[string]json.RawMessage{"type": json.RawMessage(`"layers"`)}
	}
	ids := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		ids[i] = d.String()
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	rootfs["diff_ids"] = b
	if cfg["rootfs"], err = json.Marshal(rootfs); err != nil {
		return nil, err
	}
	return json.Marshal(cfg)
}

// Manifest returns the converted image's manifest: the source's annotations, the converted
// config and layers, and the subject when the shape asks for a referrer.
func Manifest(src *v1.Manifest, config v1.Descriptor, layers []v1.Descriptor, s Shape) ([]byte, types.MediaType, error) {
	mt := types.DockerManifestSchema2
	if s.OCI || s.Subject != nil {
		mt = types.OCIManifestSchema1
	}
	config.MediaType = s.ConfigMediaType()
	m := v1.Manifest{SchemaVersion: 2, MediaType: mt, Config: config, Layers: layers, Annotations: src.Annotations}
	if s.Subject != nil {
		m.Subject, m.ArtifactType = s.Subject, s.ArtifactType
	}
	b, err := json.Marshal(m)
	return b, mt, err
}

// Index returns the converted index of a multi-platform image: the converted manifests, each
// with its platform, and the subject when the shape asks for a referrer.
func Index(src *v1.IndexManifest, manifests []v1.Descriptor, s Shape) ([]byte, types.MediaType, error) {
	mt := types.DockerManifestList
	if s.OCI || s.Subject != nil {
		mt = types.OCIImageIndex
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: mt, Manifests: manifests, Annotations: src.Annotations}
	if s.Subject != nil {
		idx.Subject, idx.ArtifactType = s.Subject, s.ArtifactType
	}
	b, err := json.Marshal(idx)
	return b, mt, err
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
