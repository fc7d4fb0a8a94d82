package imageref

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestGGCR(t *testing.T) {
	tests := []struct {
		in, want, registry, scheme string
	}{
		{"https://registry.hub.docker.com/library/redis:4", "registry.hub.docker.com/library/redis:4", "registry.hub.docker.com", "https"},
		{"http://localhost:5000/a/b:1", "localhost:5000/a/b:1", "localhost:5000", "http"},
		{"http://registry.example.org/a:1", "registry.example.org/a:1", "registry.example.org", "http"},
		{"https://r.example.org/a:1@sha256:" + hex64, "r.example.org/a@sha256:" + hex64, "r.example.org", "https"},
		// A registry without '.' or ':' stays the registry (name.ParseReference would go to Docker Hub).
		{"http://registry/foo:1", "registry/foo:1", "registry", "http"},
		{"https://Reg/a:1", "Reg/a:1", "Reg", "https"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := r.GGCR()
			if err != nil {
				t.Fatal(err)
			}
			if got := ref.Name(); got != tt.want {
				t.Errorf("Name() = %q, want %q", got, tt.want)
			}
			if got := ref.Context().RegistryStr(); got != tt.registry {
				t.Errorf("RegistryStr() = %q, want %q", got, tt.registry)
			}
			if got := ref.Context().Scheme(); got != tt.scheme {
				t.Errorf("Scheme() = %q, want %q", got, tt.scheme)
			}
			if _, ok := ref.(name.Digest); ok != (r.Digest != "") {
				t.Errorf("digest reference = %v, want %v", ok, r.Digest != "")
			}
		})
	}
	r, _ := Parse("http://registry/a/b:1*")
	if _, err := r.GGCR(); err == nil {
		t.Error("GGCR of a wildcard: no error")
	}
	repo, err := r.GGCRRepository()
	if err != nil || repo.Name() != "registry/a/b" || repo.Scheme() != "http" {
		t.Errorf("GGCRRepository of a wildcard = %v (scheme %s), %v; want registry/a/b over http", repo, repo.Scheme(), err)
	}
}
