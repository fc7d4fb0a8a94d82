package thin

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push writes img to ref (opts usually from registry.Options, which carry
// the DUCC credentials) and returns the pushed manifest digest.
func Push(ctx context.Context, img v1.Image, ref name.Reference, opts []remote.Option) (string, error) {
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("computing the thin image digest: %w", err)
	}
	all := append(append([]remote.Option(nil), opts...), remote.WithContext(ctx))
	if err := remote.Write(ref, img, all...); err != nil {
		return "", fmt.Errorf("pushing thin image %s: %w", ref, err)
	}
	return d.String(), nil
}
