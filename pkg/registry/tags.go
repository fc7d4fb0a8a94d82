package registry

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Tags lists every tag of repo, in the registry's order. A registry may answer in pages:
// go-containerregistry's remote.List asks for 1000 tags a page (?n=1000) and follows each
// answer's Link header to the next page, on the same scheme and host only. The listing is
// one operation of Do: its faults are retried like any other, up to the registry timeout.
// The scheme ctx names for the registry (ContextWithScheme) is the only one used.
func Tags(ctx context.Context, repo name.Repository, opts ...Option) ([]string, error) {
	var tags []string
	err := Do(ctx, opts, func(ro []remote.Option) error {
		var err error
		tags, err = remote.List(repo, ro...)
		return err
	})
	return tags, err
}
