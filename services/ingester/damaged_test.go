package ingester

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"flatbed.dev/pkg/store"
)

// Without Locks racing ingesters are documented to be safe: the first rename wins. One whose
// HasLayer check in Handle came just before another's rename reaches ingest with the layer
// published; it must keep that layer, not take it for a damaged directory and replace it
// (a flattener may be reading it).
func TestIngestRaceAfterPublish(t *testing.T) {
	f := newFixture(t, nil)
	s, _ := newService(t, t.TempDir())
	job, in := f.request(t, "demo/hello:1.0", 0)
	if err := handle(t, s, in, 1); err != nil {
		t.Fatal(err)
	}
	st := store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))
	layerfs := st.LayerFS(in.Layer.Digest)
	before := ino(t, layerfs)
	f.count.blobs.Store(0)
	// The racing ingester, past its HasLayer check.
	meta, err := s.ingest(context.Background(), st, in, in.Layer)
	if err != nil {
		t.Fatal(err)
	}
	if meta != nil || ino(t, layerfs) != before || f.count.blobs.Load() != 0 {
		t.Errorf("a layer another ingester just published was taken for a damaged directory, removed and "+
			"unpacked again (unpacked again: %v, layerfs inode %d -> %d, %d blob GETs)", meta != nil, before, ino(t, layerfs), f.count.blobs.Load())
	}
}

// A layer directory without its layerfs (damaged, or half removed) is unpacked again, and the
// images its origin.json recorded are kept.
func TestIngestDamagedLayerDirKeepsOrigins(t *testing.T) {
	f := newFixture(t, nil)
	s, b := newService(t, t.TempDir())
	job, in := f.request(t, "demo/hello:1.0", 0)
	st := store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))
	other := "sha256:" + strings.Repeat("c", 64)
	if err := addOrigin(st, in.Layer.Digest, other); err != nil {
		t.Fatal(err)
	}
	if st.HasLayer(in.Layer.Digest) {
		t.Fatal("the layer directory has a layerfs: fix the test")
	}
	if err := handle(t, s, in, 1); err != nil {
		t.Fatal(err)
	}
	if out := onlyIngested(t, b); out.AlreadyPresent {
		t.Error("AlreadyPresent = true for a damaged layer directory")
	}
	if !st.HasLayer(in.Layer.Digest) {
		t.Fatal("layer not unpacked again")
	}
	want := []string{in.Image.ConfigDigest, other}
	slices.Sort(want)
	if got := readOrigin(t, st, in.Layer.Digest); !slices.Equal(got, want) {
		t.Errorf("origin = %v, want %v", got, want)
	}
	noTemporaries(t, st)
}
