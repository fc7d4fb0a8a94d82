package thin

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func source() *v1.ConfigFile {
	return &v1.ConfigFile{
		OS: "linux", Architecture: "arm64", Variant: "v8",
		Config: v1.Config{
			Env:        []string{"PATH=/usr/bin", "NOVALUE", "EMPTY="},
			Cmd:        []string{"redis-server", "--port", "6379"},
			Entrypoint: []string{"/entry"},
			Labels:     map[string]string{"a": "b"},
		},
	}
}

func TestImage(t *testing.T) {
	m := New("https://registry.hub.docker.com/library/redis:4", "unpacked.cern.ch", []string{"sha256:" + hexA, "sha256:" + hexB})
	img, err := Image(m, source())
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	if mt, _ := img.MediaType(); mt != types.DockerManifestSchema2 {
		t.Errorf("manifest media type = %s", mt)
	}
	mf, _ := img.Manifest()
	if mf.Config.MediaType != types.DockerConfigJSON || len(mf.Layers) != 1 || mf.Layers[0].MediaType != types.DockerLayer {
		t.Errorf("manifest = %+v", mf)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"CVMFS_IMAGE=true", "PATH=/usr/bin", "EMPTY="}; !reflect.DeepEqual(cf.Config.Env, want) {
		t.Errorf("Env = %q, want %q", cf.Config.Env, want)
	}
	if want := []string{"redis-server", "--port", "6379"}; !reflect.DeepEqual(cf.Config.Cmd, want) {
		t.Errorf("Cmd = %q, want %q", cf.Config.Cmd, want)
	}
	if cf.Config.Entrypoint != nil || cf.Config.Labels != nil {
		t.Errorf("copied more than DUCC: %+v", cf.Config)
	}
	if cf.Architecture != "arm64" || cf.Variant != "v8" || cf.OS != "linux" {
		t.Errorf("platform = %s/%s/%s", cf.OS, cf.Architecture, cf.Variant)
	}
	got, err := Read(img)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("Read = %+v, %v; want %+v", got, err, m)
	}
	again, _ := Image(m, source())
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("same input, different digests %s and %s", d1, d2)
	}
}

func TestImageNilSource(t *testing.T) {
	img, err := Image(New("o", "r.cern.ch", []string{hexA}), nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if !reflect.DeepEqual(cf.Config.Env, []string{MarkerEnv}) || cf.Config.Cmd != nil || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config = %+v", cf)
	}
}

func TestReadNotThin(t *testing.T) {
	img, _ := random.Image(64, 2)
	if _, err := Read(img); !errors.Is(err, ErrNotThin) {
		t.Errorf("Read(random) = %v, want ErrNotThin", err)
	}
}

func TestPush(t *testing.T) {
	s := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer s.Close()
	ref, err := name.ParseReference(strings.TrimPrefix(s.URL, "http://")+"/library/redis_thin:4", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	m := New("https://registry.hub.docker.com/library/redis:4", "unpacked.cern.ch", []string{"sha256:" + hexA})
	img, err := Image(m, source())
	if err != nil {
		t.Fatal(err)
	}
	digest, err := Push(context.Background(), img, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := pulled.Digest(); d.String() != digest {
		t.Errorf("pulled digest %s, pushed %s", d, digest)
	}
	got, err := Read(pulled)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("thin.json read back = %+v, %v; want %+v", got, err, m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Push(ctx, img, ref, nil); err == nil {
		t.Error("Push with a cancelled context: no error")
	}
}
