package imagegen

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push writes every image to registry (host:port, plain http) as
// registry/Name:Tag.
func Push(ctx context.Context, registry string, imgs []Named) error {
	for _, n := range imgs {
		ref, err := name.ParseReference(registry+"/"+n.Ref(), name.Insecure)
		if err != nil {
			return fmt.Errorf("imagegen: parse %s: %w", n.Ref(), err)
		}
		if err := remote.Write(ref, n.Image, remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("imagegen: push %s: %w", ref, err)
		}
	}
	return nil
}
