package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/store"
)

// smallImages builds n small distinct images "<prefix><i>:1": one or two tiny gzip layers
// each (every layer distinct, so a cold run unpacks every one) and a config of their own.
// pkg/imagegen's images are fixed sets; these are for tests that need many images.
func smallImages(t testing.TB, prefix string, n int) []imagegen.Named {
	t.Helper()
	out := make([]imagegen.Named, 0, n)
	for i := range n {
		name := fmt.Sprintf("%s%02d", prefix, i)
		var layers []v1.Layer
		for l := range 1 + i%2 {
			layer, err := tarLayer(fmt.Sprintf("%s/layer%d.txt", name, l), fmt.Sprintf("%s layer %d\n", name, l))
			if err != nil {
				t.Fatal(err)
			}
			layers = append(layers, layer)
		}
		img, err := mutate.AppendLayers(empty.Image, layers...)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cfg = cfg.DeepCopy()
		cfg.OS, cfg.Architecture, cfg.Created = "linux", "amd64", v1.Time{Time: imagegen.Epoch}
		cfg.Config.Env = []string{"PATH=/usr/bin:/bin", "IMAGE=" + name}
		cfg.Config.Cmd = []string{"/bin/sh"}
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			t.Fatal(err)
		}
		out = append(out, imagegen.Named{Name: name, Tag: "1", Image: img})
	}
	return out
}

// tarLayer is a gzip layer holding one small file (its parent directory implicit).
func tarLayer(path, content string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: 0o644, Size: int64(len(content)), ModTime: imagegen.Epoch}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(tw, content); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// imageDigests returns the config digest and the layer digests ("sha256:<hex>") of img.
func imageDigests(t testing.TB, img v1.Image) (config string, layers []string) {
	t.Helper()
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, d.String())
	}
	return cfg.String(), layers
}

// storeHolds lists what of img the repository of st holds: its public path, flat tree and
// layers. Empty when none of it is there.
func storeHolds(t testing.TB, st *store.Store, host string, img imagegen.Named) []string {
	t.Helper()
	var found []string
	if p := st.PublicPath(host + "/" + img.Ref()); exists(p) {
		found = append(found, p)
	}
	cfg, layers := imageDigests(t, img.Image)
	if p := st.FlatDir(cfg); exists(p) {
		found = append(found, p)
	}
	for _, d := range layers {
		if p := st.LayerDir(d); exists(p) {
			found = append(found, p)
		}
	}
	return found
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
