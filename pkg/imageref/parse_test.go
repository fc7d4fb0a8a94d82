package imageref

import (
	"errors"
	"strings"
	"testing"
)

const hex64 = "2aa24e8248d5c6483c99b6ce5e905040474c424965ec866f7decd87cb316b541"

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Ref
	}{
		{"https://registry.hub.docker.com/library/redis:4",
			Ref{"https", "registry.hub.docker.com", "library/redis", "4", ""}},
		{"registry.hub.docker.com/library/redis:4",
			Ref{"https", "registry.hub.docker.com", "library/redis", "4", ""}},
		{"http://localhost:5000/a/b/c:v1.2",
			Ref{"http", "localhost:5000", "a/b/c", "v1.2", ""}},
		{"HTTPS://gitlab-registry.cern.ch/unpacked/sync",
			Ref{"https", "gitlab-registry.cern.ch", "unpacked/sync", "latest", ""}},
		{"https://hub.docker.com/library/redis/",
			Ref{"https", "hub.docker.com", "library/redis", "latest", ""}},
		{"https://registry.hub.docker.com/minio/minio@sha256:" + hex64,
			Ref{"https", "registry.hub.docker.com", "minio/minio", "", "sha256:" + hex64}},
		{"https://registry.hub.docker.com/wurstmeister/kafka:1.1.0@sha256:" + hex64,
			Ref{"https", "registry.hub.docker.com", "wurstmeister/kafka", "1.1.0", "sha256:" + hex64}},
		{"https://registry.hub.docker.com/atlas/analysisbase:21.2.1*",
			Ref{"https", "registry.hub.docker.com", "atlas/analysisbase", "21.2.1*", ""}},
		{"http://registry/foo:1", Ref{"http", "registry", "foo", "1", ""}},
		{"  localhost/x  ", Ref{"https", "localhost", "x", "latest", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // a piece of the message
	}{
		{"", "empty"},
		{"ubuntu:22.04", "missing registry"},
		{"library/ubuntu:22.04", "missing registry"},
		{"ftp://registry.example.org/a:1", `scheme "ftp"`},
		{"https://registry.example.org/", "repository is empty"},
		{"https:///a:1", "missing registry"},
		{"https://registry.example.org/Library/Ubuntu:1", `write "library/ubuntu"`},
		{"https://registry.example.org/a@sha256:abc", "sha256:<64"},
		{"https://registry.example.org/a@md5:" + hex64, "sha256:<64"},
		{"https://registry.example.org/a@x@y", "too many '@'"},
		{"https://registry.example.org/a:", "tag after ':' is empty"},
		{"https://registry.example.org/a:.bad", `tag ".bad"`},
		{"https://registry.example.org/a:1*@sha256:" + hex64, "wildcard"},
		{"https://registry.example.org/a b:1", `component "a b"`},
		{"https://regi$try/a:1", "host name"},
		{"registry.example.org//a:1", "empty path component"},
		{"reg//double", "empty path component"},
		{"https://registry.example.org/a//b:1", "empty path component"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q): no error", tt.in)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error %q, want it to contain %q", tt.in, err, tt.want)
			}
			if tt.in != "" && !strings.Contains(err.Error(), tt.in) {
				t.Errorf("error %q does not name the input %q", err, tt.in)
			}
		})
	}
}

func TestParseRefusesCredentials(t *testing.T) {
	for _, in := range []string{
		"https://robot:s3cret-pw@registry.example.org/a:1",
		"robot:s3cret-pw@registry.example.org/a:1",
		"https://robot:s3cret-pw@registry.example.org",
		"robot:s3cret-pw@registry.example.org",
	} {
		_, err := Parse(in)
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Fatalf("Parse(%q) = %v, want ErrInvalid", in, err)
		}
		if strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("Parse(%q) error shows the password: %v", in, err)
		}
		if !strings.Contains(err.Error(), "credentials") || !strings.Contains(err.Error(), "***@registry.example.org") {
			t.Errorf("Parse(%q) error %v does not say credentials are not supported", in, err)
		}
	}
	if got := Redact("https://registry.example.org/a@sha256:" + hex64); got != "https://registry.example.org/a@sha256:"+hex64 {
		t.Errorf("Redact changed a digest reference: %s", got)
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		in                 string
		str, name, ref     string
		wildcard, insecure bool
	}{
		{"registry.hub.docker.com/library/redis:4",
			"https://registry.hub.docker.com/library/redis:4", "registry.hub.docker.com/library/redis:4", ":4", false, false},
		{"http://localhost:5000/a@sha256:" + hex64,
			"http://localhost:5000/a@sha256:" + hex64, "localhost:5000/a@sha256:" + hex64, "@sha256:" + hex64, false, true},
		{"https://r.example.org/a:1@sha256:" + hex64,
			"https://r.example.org/a:1@sha256:" + hex64, "r.example.org/a:1", ":1@sha256:" + hex64, false, false},
		{"https://r.example.org/a:1*",
			"https://r.example.org/a:1*", "r.example.org/a:1*", ":1*", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if got := r.Name(); got != tt.name {
				t.Errorf("Name() = %q, want %q", got, tt.name)
			}
			if got := r.Reference(); got != tt.ref {
				t.Errorf("Reference() = %q, want %q", got, tt.ref)
			}
			if got := r.Wildcard(); got != tt.wildcard {
				t.Errorf("Wildcard() = %v, want %v", got, tt.wildcard)
			}
			if got := r.Insecure(); got != tt.insecure {
				t.Errorf("Insecure() = %v, want %v", got, tt.insecure)
			}
			again, err := Parse(r.String())
			if err != nil || again != r {
				t.Errorf("Parse(String()) = %+v, %v; want %+v", again, err, r)
			}
		})
	}
}
