package eventstest

import (
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/events"
)

// Image returns what the resolver reports about img itself: Digest, ConfigDigest, Manifest,
// Layers and the Env and Cmd of Config. Where img was found (Registry, Repository, Tag, Name)
// and the other fields are left for the caller to fill in.
func Image(t testing.TB, img v1.Image) events.Image {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	e := events.Image{Digest: d.String(), ConfigDigest: m.Config.Digest.String(), Manifest: raw,
		Config: events.Config{Env: cf.Config.Env, Cmd: cf.Config.Cmd}}
	for i, l := range m.Layers {
		e.Layers = append(e.Layers, events.Layer{Digest: l.Digest.String(), DiffID: cf.RootFS.DiffIDs[i].String(), MediaType: string(l.MediaType), Size: l.Size})
	}
	return e
}
