package relocate

import (
	"context"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/pkg/registry"
)

// Option configures Copy, Relocate and RelocateBundle.
type Option func(*options)

type options struct {
	registry []registry.Option
	remote   []remote.Option
	layout   layout.Path
}

// WithRegistry configures credentials, transport and retries through package registry.
func WithRegistry(opts ...registry.Option) Option {
	return func(o *options) { o.registry = append(o.registry, opts...) }
}

// WithRemote uses exactly these remote options, e.g. those registry.Do hands its operation,
// instead of building them from WithRegistry's.
func WithRemote(opts ...remote.Option) Option {
	return func(o *options) { o.remote = opts }
}

// FromLayout reads the images to copy from the OCI image layout at p (a thick bundle)
// instead of their registries, which are then never contacted.
func FromLayout(p layout.Path) Option {
	return func(o *options) { o.layout = p }
}

func build(opts []Option) *options {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

func (o *options) remoteOptions(ctx context.Context) []remote.Option {
	if o.remote != nil {
		return append(o.remote[:len(o.remote):len(o.remote)], remote.WithContext(ctx))
	}
	return registry.Options(ctx, o.registry...)
}
