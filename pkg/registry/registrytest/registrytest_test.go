package registrytest_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/registry/registrytest"
)

func TestServeRoundTrip(t *testing.T) {
	var requests atomic.Int32
	host := registrytest.Serve(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			next.ServeHTTP(w, r)
		})
	})
	if strings.Contains(host, "/") {
		t.Fatalf("Serve returned %q, want host:port", host)
	}
	ref, err := name.ParseReference(host+"/test/img:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := remote.Write(ref, img, registry.Options(ctx, registrytest.Options()...)...); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref, registry.Options(ctx, registrytest.Options()...)...)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); desc.Digest != d {
		t.Errorf("pushed %s, read back %s", d, desc.Digest)
	}
	if requests.Load() == 0 {
		t.Error("the wrapper saw no requests")
	}
}

func TestOptionsNoRetries(t *testing.T) {
	var manifests atomic.Int32
	host := registrytest.Serve(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				manifests.Add(1)
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	ref, err := name.ParseReference(host+"/test/img:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref, registry.Options(context.Background(), registrytest.Options()...)...); err == nil {
		t.Fatal("Head succeeded against a busy registry")
	}
	if got := manifests.Load(); got != 1 {
		t.Errorf("%d manifest requests, want 1 (no retries)", got)
	}
}

func TestOptionsIgnoreDockerConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := `{"auths":{"registry.example":{"auth":"dXNlcjpwYXNz"}}}` // user:pass
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv(registry.AuthRegistriesEnv, "")
	reg, err := name.NewRegistry("registry.example")
	if err != nil {
		t.Fatal(err)
	}
	if a, err := authn.DefaultKeychain.Resolve(reg); err != nil || a == authn.Anonymous {
		t.Fatalf("the docker config is not read (%v, %v): this test proves nothing", a, err)
	}
	a, err := registry.Keychain(registrytest.Options()...).Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	if a != authn.Anonymous {
		t.Errorf("Keychain(Options()...) resolved %v from the docker config, want anonymous", a)
	}
}
