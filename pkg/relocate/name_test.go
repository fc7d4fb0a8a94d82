package relocate

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

const dig = "sha256:1e725169f37aec55908694840bc808fb13ebf02cb1765df225437c56a796f870"

func TestFlat(t *testing.T) {
	long := func(c string) string { return c + strings.Repeat("x", 9) }
	var many []string
	for _, c := range "abcdefghijklmnopqrst" {
		many = append(many, long(string(c)))
	}
	a50, b50, c50 := strings.Repeat("a", 50), strings.Repeat("b", 50), strings.Repeat("c", 50)
	tests := []struct {
		prefix, in, want string
	}{
		// duffle #668's examples.
		{"example.com/user", "istio/proxyv2", "example.com/user/istio-proxyv2-f93a2cacc6cafa0474a2d6990a4dd1a0"},
		{"example.com/user", "docker.io/istio/proxyv2", "example.com/user/istio-proxyv2-f93a2cacc6cafa0474a2d6990a4dd1a0"},
		{"example.com/user", "index.docker.io/istio/proxyv2", "example.com/user/istio-proxyv2-f93a2cacc6cafa0474a2d6990a4dd1a0"},
		{"example.com/user", "projectriff/builder:v1", "example.com/user/projectriff-builder-a4a25a99d48adad8310050be267a10ce:v1"},
		// Docker Hub's one-component names are under library/, hashed as docker.io/library/….
		{"example.com/user", "ubuntu:22.04", "example.com/user/library-ubuntu-" + md5hex("docker.io/library/ubuntu") + ":22.04"},
		{"example.com/user", "docker.io/library/ubuntu:22.04", "example.com/user/library-ubuntu-" + md5hex("docker.io/library/ubuntu") + ":22.04"},
		// registry.hub.docker.com is a registry of its own to docker, so to duffle.
		{"example.com/user", "https://registry.hub.docker.com/library/ubuntu:22.04", "example.com/user/library-ubuntu-" + md5hex("registry.hub.docker.com/library/ubuntu") + ":22.04"},
		// Tag and digest are kept, the hash ignores them.
		{"test.host/testuser", "some.registry.com/some-user/some-path", "test.host/testuser/some-user-some-path-f4cdc2223f0c472921033d606fa74a89"},
		{"test.host/testuser", "some.registry.com/some-user/some-path:v1", "test.host/testuser/some-user-some-path-f4cdc2223f0c472921033d606fa74a89:v1"},
		{"test.host/testuser", "some.registry.com/some-user/some-path@" + dig, "test.host/testuser/some-user-some-path-f4cdc2223f0c472921033d606fa74a89@" + dig},
		{"test.host/testuser", "some.registry.com/some-user/some-path:v1@" + dig, "test.host/testuser/some-user-some-path-f4cdc2223f0c472921033d606fa74a89:v1@" + dig},
		// image-relocation's pathmapping cases.
		{"test.host/testuser", "some.registry.com/some-user", "test.host/testuser/some-user-9482d6a53a1789fb7304a4fe88362903"},
		{"test.host/testuser", "some.registry.com/some-user/some/path", "test.host/testuser/some-user-some-path-3236c106420c1d0898246e1d2b6ba8b6"},
		{"test.host/testuser", "some.registry.com/some-user/" + strings.Join(many, "/"),
			"test.host/testuser/some-user-" + strings.Join(many[:16], "-") + "---txxxxxxxxx-b0d16e8b4d43f2ec842cfcc61989a966"},
		// Without a path under the prefix, and on a registry with a port.
		{"localhost:5000", "quay.io/a/b:1", "localhost:5000/a-b-" + md5hex("quay.io/a/b") + ":1"},
		// 255 characters exactly: kept whole (16 + 1 + 205 + 1 + 32).
		{"example.com/user", "quay.io/" + a50 + "/" + b50 + "/" + c50 + "/" + strings.Repeat("d", 52),
			"example.com/user/" + a50 + "-" + b50 + "-" + c50 + "-" + strings.Repeat("d", 52) + "-" + md5hex("quay.io/"+a50+"/"+b50+"/"+c50+"/"+strings.Repeat("d", 52))},
		// One more: the middle component goes, "-" marks the gap.
		{"example.com/user", "quay.io/" + a50 + "/" + b50 + "/" + c50 + "/" + strings.Repeat("d", 53) + ":t",
			"example.com/user/" + a50 + "-" + b50 + "---" + strings.Repeat("d", 53) + "-" + md5hex("quay.io/"+a50+"/"+b50+"/"+c50+"/"+strings.Repeat("d", 53)) + ":t"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r := mustFlat(t, tt.prefix, mustParse(t, tt.in))
			if got := dockerString(r); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if n := len(r.Registry + "/" + r.Repository); n > MaxNameLength {
				t.Errorf("name has %d characters", n)
			}
			if _, err := name.ParseReference(dockerString(r)); err != nil {
				t.Errorf("not a valid reference: %v", err)
			}
		})
	}
}

// TestFlatCrunch follows image-relocation's crunch through its cases: the last component
// alone, then the first alone, then the hash alone.
func TestFlatCrunch(t *testing.T) {
	x := func(c string, n int) string { return c + strings.Repeat("x", n) }
	huge := strings.Repeat("y", 230)
	p, _ := ParsePrefix("test.host/testuser")
	tests := []struct{ in, want string }{
		{"r.example.com/some-user/" + huge + "/" + x("t", 9), "test.host/testuser/some-user---" + x("t", 9)},
		{"r.example.com/" + huge + "/suffix", "test.host/testuser/suffix"},
		{"r.example.com/some-user/" + huge, "test.host/testuser/some-user"},
		{"r.example.com/" + huge, "test.host/testuser"},
	}
	for _, tt := range tests {
		in := mustParse(t, tt.in)
		r := mustName(t, p.Flat, in)
		host, path := dockerName(in)
		want := tt.want + "-" + md5hex(host+"/"+path)
		if tt.want == "test.host/testuser" {
			want = tt.want + "/" + md5hex(host+"/"+path)
		}
		if got := dockerString(r); got != want {
			t.Errorf("%s:\ngot  %s\nwant %s", tt.in, got, want)
		}
	}
}

func TestFlatPrefixTooLong(t *testing.T) {
	p, err := ParsePrefix("example.com/" + strings.Repeat("p", 230))
	if err != nil {
		t.Fatal(err)
	}
	in, _ := ParseImage("ubuntu")
	if _, err := p.Flat(in); err == nil || !strings.Contains(err.Error(), "more than 255") {
		t.Fatalf("got %v, want a name too long", err)
	}
}

func TestNested(t *testing.T) {
	p, _ := ParsePrefix("example.com/user")
	tests := []struct{ in, want string }{
		{"istio/proxyv2:1.2", "example.com/user/istio/proxyv2:1.2"},
		{"ubuntu", "example.com/user/library/ubuntu"},
		{"quay.io/a/b/c@" + dig, "example.com/user/a/b/c@" + dig},
	}
	for _, tt := range tests {
		if got := dockerString(mustName(t, p.Nested, mustParse(t, tt.in))); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.in, got, tt.want)
		}
	}
	in, _ := ParseImage("quay.io/" + strings.Repeat("a", 240))
	if _, err := p.Nested(in); err == nil {
		t.Error("a nested name over 255 characters was accepted")
	}
}

func TestParsePrefix(t *testing.T) {
	good := map[string]string{
		"example.com/user":              "example.com/user",
		"example.com":                   "example.com",
		"localhost:5000/a/b":            "localhost:5000/a/b",
		"http://registry/mirror":        "registry/mirror",
		"https://example.com/userprobe": "example.com/userprobe",
	}
	for in, want := range good {
		p, err := ParsePrefix(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if p.String() != want {
			t.Errorf("%s: got %s, want %s", in, p, want)
		}
	}
	for _, in := range []string{"", "example.com/user/", "example.com//user", "example.com/user:1", "example.com/user@" + dig, "user/repo", "example.com/User", "ftp://example.com/a"} {
		if _, err := ParsePrefix(in); err == nil {
			t.Errorf("%q was accepted", in)
		}
	}
}

func TestParseImage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ubuntu", "docker.io/ubuntu"},
		{"istio/proxyv2:1", "docker.io/istio/proxyv2:1"},
		{"localhost/a", "localhost/a"},
		{"localhost:5000/a:1@" + dig, "localhost:5000/a:1@" + dig},
		{"quay.io/a@" + dig, "quay.io/a@" + dig},
		{"https://registry.hub.docker.com/library/redis", "registry.hub.docker.com/library/redis"},
	}
	for _, tt := range tests {
		r, err := ParseImage(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if got := dockerString(r); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.in, got, tt.want)
		}
	}
	if _, err := ParseImage("Ubuntu"); err == nil {
		t.Error("an upper-case name was accepted")
	}
}
