package eventstest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/events"
)

// Describe returns what the resolver reports about img found at name (registry/repository:tag):
// the reference the events carry and the description it stores.
func Describe(t testing.TB, img v1.Image, registry, repository, tag string) *events.Description {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	ref := events.Image{Registry: registry, Repository: repository, Tag: tag, Digest: d.String(), MediaType: string(mt),
		ConfigDigest: m.Config.Digest.String(), LayerCount: len(m.Layers)}
	ref.Name = registry + "/" + repository + ":" + tag
	if tag == "" {
		ref.Name = registry + "/" + repository + "@" + ref.Digest
	}
	desc, err := events.Describe(ref, raw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

// Descriptions is an in-memory image description store. Its zero value is ready to use.
type Descriptions struct {
	mu    sync.Mutex
	blobs map[string][]byte
	Gets  int // calls of Get
}

// Put stores d's manifest and config.
func (s *Descriptions) Put(_ context.Context, d *events.Description) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blobs == nil {
		s.blobs = map[string][]byte{}
	}
	s.blobs[d.Image.Digest] = d.Manifest
	s.blobs[d.Image.ConfigDigest] = d.RawConfig
	return nil
}

// Get reads back the description of img, as the bus's store does.
func (s *Descriptions) Get(_ context.Context, img events.Image) (*events.Description, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Gets++
	m, ok1 := s.blobs[img.Digest]
	c, ok2 := s.blobs[img.ConfigDigest]
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("%w %s", events.ErrNoDescription, img.Name)
	}
	return events.Describe(img, m, c)
}
