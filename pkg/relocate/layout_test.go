package relocate

import (
	"context"
	"errors"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"flatbed.dev/pkg/registry/registrytest"
)

const refName = "org.opencontainers.image.ref.name"

// thickLayout writes an OCI layout holding an image and an index, named as image-relocation
// names them, plus an image named only by a tag (as skopeo does).
func thickLayout(t *testing.T) (p layout.Path, img v1.Image, idx v1.ImageIndex) {
	t.Helper()
	p, err := layout.Write(t.TempDir(), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img, _ = random.Image(256, 2)
	idx, _ = random.Index(256, 1, 2)
	tagOnly, _ := random.Image(64, 1)
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refName: "docker.io/technosophos/helloworld:0.1.0"})); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"io.containerd.image.name": "quay.io/team/multi:2"})); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(tagOnly, layout.WithAnnotations(map[string]string{refName: "latest"})); err != nil {
		t.Fatal(err)
	}
	return p, img, idx
}

// TestCopyFromLayout relocates from a layout with no source registry at all: the images
// are named on Docker Hub and quay.io, which a test never reaches.
func TestCopyFromLayout(t *testing.T) {
	p, img, idx := thickLayout(t)
	dst := registrytest.Serve(t, nil)
	imgDigest, _ := img.Digest()
	idxDigest, _ := idx.Digest()
	child, _ := idx.IndexManifest()
	tests := []struct {
		in   string
		want v1.Hash
	}{
		{"technosophos/helloworld:0.1.0", imgDigest},
		{"quay.io/team/multi:2", idxDigest},
		{"quay.io/team/multi@" + idxDigest.String(), idxDigest},
		// A manifest of an index, found by digest.
		{"quay.io/team/multi@" + child.Manifests[1].Digest.String(), child.Manifests[1].Digest},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			from := mustParse(t, tt.in)
			to := mustFlat(t, dst+"/offline", from)
			got, err := Copy(context.Background(), from, to, append(testOptions(), FromLayout(p))...)
			if err != nil {
				t.Fatal(err)
			}
			if _, d := served(t, to); got != tt.want || d != tt.want {
				t.Errorf("Copy returned %s, target serves %s, want %s", got, d, tt.want)
			}
			checkBlobs(t, to)
		})
	}
	from := mustParse(t, "technosophos/helloworld:0.2.0")
	if _, err := Copy(context.Background(), from, mustFlat(t, dst+"/offline", from), append(testOptions(), FromLayout(p))...); err == nil || errors.Is(err, ErrDigestChanged) {
		t.Errorf("an image the layout lacks: got %v", err)
	}
}

func TestLayoutImages(t *testing.T) {
	p, _, _ := thickLayout(t)
	got, err := LayoutImages(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"docker.io/technosophos/helloworld:0.1.0", "quay.io/team/multi:2"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
