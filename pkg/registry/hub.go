package registry

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// hubNames are the Docker Hub host names DUCC wishlists use; docker's
// config keeps Hub credentials under index.docker.io only.
var hubNames = map[string]bool{
	"registry.hub.docker.com": true,
	"docker.io":               true,
	"registry-1.docker.io":    true,
}

// hubAlias looks Docker Hub hosts up in inner under index.docker.io.
type hubAlias struct{ inner authn.Keychain }

func (h hubAlias) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return h.ResolveContext(context.Background(), target)
}

func (h hubAlias) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	if hubNames[target.RegistryStr()] {
		reg, err := name.NewRegistry(name.DefaultRegistry)
		if err != nil {
			return nil, err
		}
		target = reg
	}
	return authn.Resolve(ctx, h.inner, target)
}
