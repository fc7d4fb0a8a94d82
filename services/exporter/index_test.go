package exporter

import (
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/dumbremote"
	"flatbed.dev/pkg/registry/registrytest"
)

// A tag that named an index is exported as that index, every platform, at the digest the
// resolver recorded, even after the tag moved: the remote gives the index back whole.
func TestExportIndexPinned(t *testing.T) {
	host := registrytest.Serve(t, nil)
	idx, _ := random.Index(512, 1, 2)
	tag, _ := name.ParseReference(host+"/team/multi:1", name.Insecure)
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	im, _ := idx.IndexManifest()
	child, _ := idx.Image(im.Manifests[0].Digest)
	resolved := eventstest.Describe(t, child, host, "team/multi", "1").Image
	resolved.IndexDigest, resolved.Platform = idxDigest.String(), "linux/amd64" // as the resolver records it
	moved, _ := random.Image(256, 1)
	if err := remote.Write(tag, moved); err != nil { // the tag moves before the exporter runs
		t.Fatal(err)
	}
	remoteURL := "dir://" + t.TempDir()
	s, b := newService()
	if err := handle(t, s, exportJob("http://"+host+"/team/multi:1", remoteURL), resolved, 1); err != nil {
		t.Fatal(err)
	}
	out := eventstest.Decode[events.ImageExported](t, b.Envelopes()[0])
	if want := host + "/team/multi:1@" + idxDigest.String(); out.Reference != want {
		t.Errorf("reference %s, want %s", out.Reference, want)
	}
	r, err := dumbremote.Open(context.Background(), remoteURL)
	if err != nil {
		t.Fatal(err)
	}
	_, art, err := r.Import(context.Background(), host+"/team/multi:1")
	if err != nil {
		t.Fatal(err)
	}
	got, ok := art.(v1.ImageIndex)
	if !ok {
		t.Fatalf("the remote gives a %T, want the index", art)
	}
	if d, _ := got.Digest(); d != idxDigest {
		t.Errorf("the remote's index is %s, want %s", d, idxDigest)
	}
	gotIM, _ := got.IndexManifest()
	for _, m := range gotIM.Manifests {
		if _, err := got.Image(m.Digest); err != nil {
			t.Errorf("platform %s: %v", m.Digest, err)
		}
	}
}
