package events

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// MaxManifestBytes and MaxConfigBytes bound what is read of an image's manifest and config,
// as skopeo and containerd bound them (4 MiB): an image that names a larger one is refused
// before it is fetched.
const (
	MaxManifestBytes = 4 << 20
	MaxConfigBytes   = 4 << 20
)

// Description is what an image holds: its layers (lowest first) and configuration, read from
// its raw manifest and config, which it keeps.
type Description struct {
	Image     Image
	Layers    []Layer
	Config    Config
	Manifest  []byte // the raw manifest, stored as .metadata/…/manifest.json
	RawConfig []byte
}

// Descriptions stores image descriptions once, content-addressed, for every stage to read:
// events carry an Image (a reference), never the manifest or config themselves.
type Descriptions interface {
	// Put stores the raw manifest and config of d (doing so again is harmless).
	Put(ctx context.Context, d *Description) error
	// Get reads back the description of img, checked against img's digests. It fails with
	// ErrNoDescription when nothing is stored for img.
	Get(ctx context.Context, img Image) (*Description, error)
}

// ErrNoDescription means no description is stored for an image: it was never resolved, or its
// event did not come from the resolver.
var ErrNoDescription = errors.New("no stored description of the image")

// Describe checks that manifest and config are the ones img names (by digest, size and layer
// count) and reads the layers and configuration from them.
func Describe(img Image, manifest, config []byte) (*Description, error) {
	if len(manifest) > MaxManifestBytes {
		return nil, fmt.Errorf("manifest of %s is %d bytes, over the limit of %d", img.Name, len(manifest), MaxManifestBytes)
	}
	if len(config) > MaxConfigBytes {
		return nil, fmt.Errorf("config of %s is %d bytes, over the limit of %d", img.Name, len(config), MaxConfigBytes)
	}
	if err := matchDigest(manifest, img.Digest); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", img.Name, err)
	}
	if err := matchDigest(config, img.ConfigDigest); err != nil {
		return nil, fmt.Errorf("config of %s: %w", img.Name, err)
	}
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
			Size      int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("parsing the manifest of %s: %w", img.Name, err)
	}
	if m.Config.Digest != img.ConfigDigest {
		return nil, fmt.Errorf("manifest of %s names config %s, not %s", img.Name, m.Config.Digest, img.ConfigDigest)
	}
	if len(m.Layers) != img.LayerCount {
		return nil, fmt.Errorf("manifest of %s has %d layers, not %d", img.Name, len(m.Layers), img.LayerCount)
	}
	var c struct {
		Config struct {
			Env        []string          `json:"Env"`
			Cmd        []string          `json:"Cmd"`
			Entrypoint []string          `json:"Entrypoint"`
			WorkingDir string            `json:"WorkingDir"`
			User       string            `json:"User"`
			Labels     map[string]string `json:"Labels"`
		} `json:"config"`
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("parsing the config of %s: %w", img.Name, err)
	}
	if len(c.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image %s is inconsistent: %d layers in the manifest, %d diff ids in the config", img.Name, len(m.Layers), len(c.RootFS.DiffIDs))
	}
	d := &Description{Image: img, Manifest: manifest, RawConfig: config, Layers: make([]Layer, len(m.Layers)),
		Config: Config{Env: c.Config.Env, Cmd: c.Config.Cmd, Entrypoint: c.Config.Entrypoint, WorkingDir: c.Config.WorkingDir,
			User: c.Config.User, Labels: c.Config.Labels}}
	for i, l := range m.Layers {
		d.Layers[i] = Layer{Digest: l.Digest, DiffID: c.RootFS.DiffIDs[i], MediaType: l.MediaType, Size: l.Size}
		if err := d.Layers[i].Validate(); err != nil {
			return nil, fmt.Errorf("image %s, layer %d: %w", img.Name, i, err)
		}
	}
	return d, nil
}

// matchDigest checks that b has the digest d ("sha256:…" or "sha512:…").
func matchDigest(b []byte, d string) error {
	alg, want, _ := strings.Cut(d, ":")
	var h hash.Hash
	switch alg {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return fmt.Errorf("unsupported digest %q", d)
	}
	h.Write(b)
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("content has digest %s:%s, not %s", alg, got, d)
	}
	return nil
}
