package registry

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
)

// basic is a user and password that never prints the password, so that a
// stray %v in a log line cannot leak it.
type basic struct{ user, password string }

func (b basic) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: b.user, Password: b.password}, nil
}

func (b basic) String() string {
	return fmt.Sprintf("basic auth for user %q (password hidden)", b.user)
}
func (b basic) GoString() string { return b.String() }

// scoped hands out one credential for one registry ("" = every registry).
type scoped struct {
	registry string
	auth     basic
}

func (s scoped) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return s.ResolveContext(context.Background(), target)
}

func (s scoped) ResolveContext(_ context.Context, target authn.Resource) (authn.Authenticator, error) {
	if s.registry == "" || s.registry == target.RegistryStr() {
		return s.auth, nil
	}
	return authn.Anonymous, nil
}
