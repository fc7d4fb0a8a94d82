package registry

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// recorder answers every lookup with one user and remembers the registry asked for.
type recorder struct{ asked *string }

func (r recorder) Resolve(target authn.Resource) (authn.Authenticator, error) {
	*r.asked = target.RegistryStr()
	return &authn.Basic{Username: "from-config", Password: "x"}, nil
}

func user(t *testing.T, kc authn.Keychain, registry string) string {
	t.Helper()
	reg, err := name.NewRegistry(registry)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := kc.Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	if auth == authn.Anonymous {
		return ""
	}
	cfg, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Username
}

func TestHubAlias(t *testing.T) {
	tests := []struct{ registry, wantAsked string }{
		{"registry.hub.docker.com", name.DefaultRegistry},
		{"docker.io", name.DefaultRegistry},
		{"gitlab-registry.cern.ch", "gitlab-registry.cern.ch"},
	}
	for _, tt := range tests {
		var asked string
		if got := user(t, Keychain(WithKeychain(recorder{&asked})), tt.registry); got != "from-config" {
			t.Errorf("%s: user %q", tt.registry, got)
		}
		if asked != tt.wantAsked {
			t.Errorf("%s: config asked for %q, want %q", tt.registry, asked, tt.wantAsked)
		}
	}
}

func TestEnvKeychain(t *testing.T) {
	t.Setenv(AuthRegistriesEnv, "CERN, BROKEN")
	t.Setenv("DUCC_CERN_IDENT", "https://gitlab-registry.cern.ch/")
	t.Setenv("DUCC_CERN_USER", "cern-user")
	t.Setenv("DUCC_CERN_PASS", "cern-pass")
	t.Setenv("DUCC_BROKEN_IDENT", "broken.example.org")
	kc := Keychain(WithKeychain(none), WithBasicAuth("push.example.org", "pusher", "p"))
	tests := []struct{ registry, want string }{
		{"gitlab-registry.cern.ch", "cern-user"},
		{"push.example.org", "pusher"},
		{"broken.example.org", ""},
		{"registry.hub.docker.com", ""},
	}
	for _, tt := range tests {
		if got := user(t, kc, tt.registry); got != tt.want {
			t.Errorf("%s: user %q, want %q", tt.registry, got, tt.want)
		}
	}
	err := CheckEnv()
	if err == nil || !strings.Contains(err.Error(), "DUCC_BROKEN_USER") || !strings.Contains(err.Error(), "DUCC_BROKEN_PASS") {
		t.Errorf("CheckEnv() = %v, want it to name the missing variables", err)
	}
}
