package flattener

import (
	"context"

	"flatbed.dev/pkg/cvmfs"
)

// begin opens the cvmfs_server transaction of the wish's repository, in which the flat tree,
// the public path, the metadata and the podman entry are written (a mountless repository
// never gets here: mountless.go); nil for a plain directory
// (every method of a nil *cvmfs.Tx does nothing). It is published just before image.flattened
// is: a failure, a SIGTERM or a lost lease before that aborts it (abort -f), nothing published.
func (s *Service) begin(ctx context.Context, cvmfsRepo string) (*cvmfs.Tx, error) {
	if s.CVMFS == nil {
		return nil, nil
	}
	p := s.CVMFS(cvmfsRepo)
	if p == nil {
		return nil, nil
	}
	return p.Begin(ctx)
}
