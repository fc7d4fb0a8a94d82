package eventstest

import (
	"context"
	"fmt"

	"flatbed.dev/events"
)

var _ events.Indexes = (*Descriptions)(nil)

// PutIndex stores a raw index under its digest.
func (s *Descriptions) PutIndex(_ context.Context, digest string, raw []byte) error {
	if err := events.CheckIndex(digest, raw); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blobs == nil {
		s.blobs = map[string][]byte{}
	}
	s.blobs[digest] = raw
	return nil
}

// GetIndex reads a raw index back, as the bus's store does.
func (s *Descriptions) GetIndex(_ context.Context, digest string) ([]byte, error) {
	s.mu.Lock()
	raw, ok := s.blobs[digest]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: index %s", events.ErrNoDescription, digest)
	}
	return raw, events.CheckIndex(digest, raw)
}
