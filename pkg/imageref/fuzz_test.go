package imageref

import (
	"errors"
	"strings"
	"testing"
)

// fuzzSeeds are references, good and bad, including those of e2e/malformed_test.go.
var fuzzSeeds = []string{
	"https://registry.hub.docker.com/library/redis:4",
	"registry.hub.docker.com/library/redis:4",
	"http://localhost:5000/a/b/c:v1.2",
	"HTTPS://gitlab-registry.cern.ch/unpacked/sync",
	"https://hub.docker.com/library/redis/",
	"https://registry.hub.docker.com/minio/minio@sha256:" + hex64,
	"https://registry.hub.docker.com/wurstmeister/kafka:1.1.0@sha256:" + hex64,
	"https://registry.hub.docker.com/atlas/analysisbase:21.2.1*",
	"http://registry/foo:1",
	"  localhost/x  ",
	"", "library/ubuntu", "ubuntu:22.04", "registry.example.org/Library/Ubuntu:1", "reg.example.org/a:",
	"reg.example.org/a@sha256:xyz", "ftp://reg.example.org/a:1", "reg.example.org/a b:1", "reg//double",
	"reg.example.org/a:1*@sha256:" + hex64, "https://robot:pw@reg.example.org/a:1", "42", "[::1]:5000/a:1",
	"https:///a:1", "reg.example.org/a@x@y", "reg.example.org/a:.bad",
}

// FuzzParse: Parse never panics, every error wraps ErrInvalid, and a parsed reference
// round-trips through String.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q) error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if r.Scheme == "" || r.Registry == "" || r.Repository == "" || (r.Tag == "" && r.Digest == "") {
			t.Fatalf("Parse(%q) = %+v: a part is missing", s, r)
		}
		again, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q) fails: %v", s, r, r.String(), err)
		}
		if again != r {
			t.Fatalf("Parse(%q) = %+v, Parse(String()) = %+v", s, r, again)
		}
		if _, err := r.Expand(DefaultOutputFormat); err != nil {
			t.Fatalf("Expand(default) of %+v: %v", r, err)
		}
		if strings.Contains(r.Registry, "@") {
			t.Fatalf("Parse(%q) accepted credentials in the registry %q", s, r.Registry)
		}
		if !r.Wildcard() {
			if _, err := r.GGCR(); err != nil {
				t.Fatalf("Parse(%q) = %+v, but GGCR fails: %v", s, r, err)
			}
		}
	})
}
