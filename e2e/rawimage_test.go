package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Hand-written images: manifests and configs that no builder would make (thousands of layers,
// huge configs, lying descriptors), pushed blob by blob to the real registry.

type rawBlob struct {
	data      []byte
	mediaType types.MediaType
}

func (b rawBlob) digest() string {
	h := sha256.Sum256(b.data)
	return "sha256:" + hex.EncodeToString(h[:])
}

// rawLayer is one layer descriptor of a hand-written manifest.
type rawLayer struct {
	blob rawBlob
	size int64 // as the manifest states it (may lie)
}

// rawImage pushes config and layers, then a Docker v2 manifest naming them, as host/repo.
func rawImage(t testing.TB, host, repo string, config []byte, layers []rawLayer) {
	t.Helper()
	ctx := context.Background()
	r, err := name.NewRepository(host+"/"+repo[:indexColon(repo)], name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rawBlob{config, types.DockerConfigJSON}
	pushed := map[string]bool{}
	for _, b := range append([]rawBlob{cfg}, layerBlobs(layers)...) {
		if pushed[b.digest()] {
			continue
		}
		pushed[b.digest()] = true
		if err := remote.WriteLayer(r, static.NewLayer(b.data, b.mediaType), remote.WithContext(ctx)); err != nil {
			t.Fatalf("pushing blob %s: %v", b.digest(), err)
		}
	}
	type desc struct {
		MediaType types.MediaType `json:"mediaType"`
		Size      int64           `json:"size"`
		Digest    string          `json:"digest"`
	}
	m := struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		Config        desc            `json:"config"`
		Layers        []desc          `json:"layers"`
	}{2, types.DockerManifestSchema2, desc{cfg.mediaType, int64(len(config)), cfg.digest()}, nil}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{l.blob.mediaType, l.size, l.blob.digest()})
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(ref, rawManifest{raw, types.DockerManifestSchema2}, remote.WithContext(ctx)); err != nil {
		t.Fatalf("pushing manifest %s: %v", ref, err)
	}
}

func layerBlobs(ls []rawLayer) []rawBlob {
	var out []rawBlob
	for _, l := range ls {
		out = append(out, l.blob)
	}
	return out
}

func indexColon(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return i
		}
		if s[i] == '/' {
			break
		}
	}
	return len(s)
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// tarOf makes an uncompressed tar of the named regular files.
func tarOf(t testing.TB, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for n, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	return b.Bytes()
}

func gzipOf(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func sha256Of(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}

// configOf is an image config with the given diff ids and labels.
func configOf(t testing.TB, diffIDs []string, labels map[string]string) []byte {
	t.Helper()
	c := map[string]any{
		"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"/bin/sh"}, "Labels": labels},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

var _ = fmt.Sprint
