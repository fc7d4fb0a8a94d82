package relocate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// verifier reads digests back from the target of a copy.
type verifier struct {
	image, target string
	ro            []remote.Option
}

// check fails unless the target serves ref as want and, for an index, every manifest it
// lists (recursively) under that manifest's digest.
func (v verifier) check(ref name.Reference, art remote.Taggable, want v1.Hash) error {
	if err := v.served(ref, want); err != nil {
		return err
	}
	idx, ok := art.(v1.ImageIndex)
	if !ok {
		return nil
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, child := range im.Manifests {
		var childArt remote.Taggable
		switch {
		case child.MediaType.IsIndex():
			if childArt, err = idx.ImageIndex(child.Digest); err != nil {
				return err
			}
		case child.MediaType.IsImage():
		default:
			continue // a blob, not a manifest
		}
		if err := v.check(ref.Context().Digest(child.Digest.String()), childArt, child.Digest); err != nil {
			return err
		}
	}
	return nil
}

// served asks the target for ref's digest (HEAD) and compares it with want.
func (v verifier) served(ref name.Reference, want v1.Hash) error {
	desc, err := remote.Head(ref, v.ro...)
	if err != nil && !unanswered(err) {
		// Some registries leave Docker-Content-Digest out of a HEAD answer: GET computes it.
		var d *remote.Descriptor
		if d, err = remote.Get(ref, v.ro...); err == nil {
			desc = &d.Descriptor
		}
	}
	switch {
	case err == nil && desc.Digest == want:
		return nil
	case err == nil:
		return &DigestError{Image: v.image, Target: v.target, Want: want, Got: desc.Digest}
	case unanswered(err) && !notFound(err):
		return fmt.Errorf("reading back the digest of %s copied to %s: %w", v.image, v.target, err)
	}
	// Not found just after it was written, or served under another digest than asked for.
	return &DigestError{Image: v.image, Target: v.target, Want: want, Err: err}
}

// unanswered reports whether err is not the registry's word on the manifest: the network,
// the context, or an error status.
func unanswered(err error) bool {
	var terr *transport.Error
	var uerr *url.Error
	var nerr net.Error
	return errors.As(err, &terr) || errors.As(err, &uerr) || errors.As(err, &nerr) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func notFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}
