package imageref

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	tag := Ref{"https", "registry.hub.docker.com", "library/redis", "4", ""}
	dig := Ref{"https", "registry.hub.docker.com", "library/redis", "", "sha256:" + hex64}
	both := Ref{"http", "localhost:5000", "a/b", "1", "sha256:" + hex64}
	tests := []struct {
		ref    Ref
		format string
		want   string
	}{
		{tag, DefaultOutputFormat, "https://registry.hub.docker.com/library/redis_thin:4"},
		{tag, "https://gitlab-registry.cern.ch/unpacked/sync/$(image)", "https://gitlab-registry.cern.ch/unpacked/sync/library/redis:4"},
		{tag, "$(scheme)://registry.gitlab.cern.ch/thin/$(image)", "https://registry.gitlab.cern.ch/thin/library/redis:4"},
		{dig, "x.org/$(repository)$(reference)", "x.org/library/redis@sha256:" + hex64},
		{dig, "$(image)", "library/redis@sha256:" + hex64},
		{both, "$(reference)|$(tag)|$(digest)", ":1@sha256:" + hex64 + "|1|sha256:" + hex64},
		{both, "$(scheme) $(registry) $(registry)", "http localhost:5000 localhost:5000"},
		{tag, "no variables", "no variables"},
		{tag, "", ""},
		{tag, "$", "$"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			got, err := tt.ref.Expand(tt.format)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Expand(%q) = %q, want %q", tt.format, got, tt.want)
			}
		})
	}
}

func TestExpandErrors(t *testing.T) {
	tests := []struct{ format, want string }{
		{"$(registry)/$(repo):$(tag)", "unknown variable $(repo)"},
		{"$(registry)/$(image", "not closed"},
		{"$()", "unknown variable $()"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			_, err := Ref{}.Expand(tt.format)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range []string{tt.want, "$(reference)", tt.format} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if err2 := CheckFormat(tt.format); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("CheckFormat = %v, want %v", err2, err)
			}
		})
	}
}
