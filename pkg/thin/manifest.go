package thin

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// FileName is the only file in a thin image's layer.
const FileName = "thin.json"

// Version is the thin.json version DUCC writes.
const Version = "1.0"

// Layer is one unpacked layer: its compressed digest as hex (no "sha256:")
// and where the CernVM-FS graph driver finds it.
type Layer struct {
	Digest string `json:"digest"`
	URL    string `json:"url,omitempty"`
}

// Manifest is thin.json, field for field as DUCC (and the CernVM-FS docker
// graph driver's ThinImage) writes it.
type Manifest struct {
	Version    string  `json:"version"`
	MinVersion string  `json:"min_version,omitempty"`
	Origin     string  `json:"origin,omitempty"`
	Layers     []Layer `json:"layers"`
	Comment    string  `json:"comment,omitempty"`
}

// New describes the image origin (its whole name, e.g.
// "https://registry.hub.docker.com/library/redis:4") whose layers, given
// by compressed digest ("sha256:<hex>" or "<hex>") from bottom to top, are
// unpacked in cvmfsRepo ("repo" or "repo/subdir").
func New(origin, cvmfsRepo string, layerDigests []string) Manifest {
	m := Manifest{Version: Version, Origin: origin, Layers: make([]Layer, len(layerDigests))}
	for i, d := range layerDigests {
		if _, hex, ok := strings.Cut(d, ":"); ok {
			d = hex
		}
		m.Layers[i] = Layer{Digest: d, URL: LayerURL(cvmfsRepo, d)}
	}
	return m
}

// LayerURL is "cvmfs://<repo>/.layers/<hex[0:2]>/<hex>/layerfs".
func LayerURL(cvmfsRepo, hex string) string {
	prefix := hex
	if len(prefix) > 2 {
		prefix = prefix[:2]
	}
	return "cvmfs://" + path.Join(strings.Trim(cvmfsRepo, "/"), ".layers", prefix, hex, "layerfs")
}

// Marshal returns thin.json as DUCC writes it (indented by two spaces).
func Marshal(m Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", FileName, err)
	}
	return b, nil
}

// Unmarshal reads thin.json.
func Unmarshal(data []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("decoding %s: %w", FileName, err)
	}
	return m, nil
}
