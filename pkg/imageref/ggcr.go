package imageref

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// GGCR returns r as a go-containerregistry reference: a digest reference
// when r has a digest (the tag is then informational), a tag reference
// otherwise. Plain-http registries get name.Insecure. The registry is kept
// as written (registry.hub.docker.com stays registry.hub.docker.com).
func (r Ref) GGCR() (name.Reference, error) {
	if r.Wildcard() {
		return nil, fmt.Errorf("image %s has the wildcard tag %q: expand it to concrete tags first", r, r.Tag)
	}
	var opts []name.Option
	if r.Insecure() {
		opts = append(opts, name.Insecure)
	}
	s := r.Registry + "/" + r.Repository + ":" + r.Tag
	if r.Digest != "" {
		s = r.Registry + "/" + r.Repository + "@" + r.Digest
	}
	ref, err := name.ParseReference(s, opts...)
	if err != nil {
		return nil, fmt.Errorf("converting %s to a registry reference: %w", r, err)
	}
	return ref, nil
}
