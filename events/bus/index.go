package bus

import (
	"context"
	"fmt"

	"flatbed.dev/events"
)

var _ events.Indexes = (*Descriptions)(nil)

// PutIndex stores a multi-arch image's raw index under its digest, unless already there whole.
func (s *Descriptions) PutIndex(ctx context.Context, digest string, raw []byte) error {
	if err := events.CheckIndex(digest, raw); err != nil {
		return err
	}
	if err := s.store(ctx, digest, raw); err != nil {
		return fmt.Errorf("storing the index %s: %w", digest, err)
	}
	return nil
}

// GetIndex reads a stored index back and checks it against its digest.
func (s *Descriptions) GetIndex(ctx context.Context, digest string) ([]byte, error) {
	raw, err := s.read(ctx, events.Image{Name: "index " + digest}, digest, events.MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	if err := events.CheckIndex(digest, raw); err != nil {
		return nil, err
	}
	return raw, nil
}
