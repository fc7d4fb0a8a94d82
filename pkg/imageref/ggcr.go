package imageref

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// GGCR returns r as a go-containerregistry reference: a digest reference
// when r has a digest (the tag is then informational), a tag reference
// otherwise. Plain-http registries get name.Insecure. The registry is kept
// as written (registry.hub.docker.com stays registry.hub.docker.com), also
// when it has neither '.' nor ':' ("http://registry/foo:1"), where
// name.ParseReference would take the first component for a Docker Hub
// repository.
func (r Ref) GGCR() (name.Reference, error) {
	if r.Wildcard() {
		return nil, fmt.Errorf("image %s has the wildcard tag %q: expand it to concrete tags first", r, r.Tag)
	}
	repo, err := r.GGCRRepository()
	if err != nil {
		return nil, err
	}
	switch {
	case r.Digest != "":
		if !digestRe.MatchString(r.Digest) {
			return nil, invalid(r.String(), fmt.Sprintf("digest %q is not of the form sha256:<64 lower-case hex digits>", r.Digest))
		}
		return repo.Digest(r.Digest), nil
	case r.Tag == "" || !tagRe.MatchString(r.Tag):
		return nil, invalid(r.String(), fmt.Sprintf("tag %q is not valid", r.Tag))
	}
	return repo.Tag(r.Tag), nil
}

// GGCRRepository returns r's repository as a go-containerregistry reference, to list its tags
// (a wildcard's too): plain-http registries get name.Insecure, and the registry is kept as
// written, as in GGCR.
func (r Ref) GGCRRepository() (name.Repository, error) {
	var opts []name.Option
	if r.Insecure() {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(r.Registry, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("converting %s to a registry reference: %w", r, err)
	}
	if err := checkRepository(r.String(), r.Repository); err != nil {
		return name.Repository{}, err
	}
	return reg.Repo(r.Repository), nil
}
