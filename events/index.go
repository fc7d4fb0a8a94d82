package events

import (
	"context"
	"fmt"
)

// Indexes stores the raw index a multi-arch image's tag named, by digest, next to the
// descriptions of its platforms: the flattener records it (.metadata/<name>/manifest.json)
// once every platform is in the store, so a HEAD of the tag tells an unchanged image. The
// image description stores (the bus's and eventstest's) are Indexes too.
type Indexes interface {
	PutIndex(ctx context.Context, digest string, raw []byte) error
	// GetIndex reads the index back, checked against its digest; ErrNoDescription when
	// nothing is stored under it.
	GetIndex(ctx context.Context, digest string) ([]byte, error)
}

// CheckIndex checks raw index bytes against their digest and size bound.
func CheckIndex(digest string, raw []byte) error {
	if len(raw) > MaxManifestBytes {
		return fmt.Errorf("index %s is %d bytes, over the limit of %d", digest, len(raw), MaxManifestBytes)
	}
	if err := matchDigest(raw, digest); err != nil {
		return fmt.Errorf("index %s: %w", digest, err)
	}
	return nil
}
