package ingester

import (
	"os"
	"path/filepath"
	"testing"

	"flatbed.dev/pkg/store"
)

// A layer the flattener asks for again (it went missing after its first layer.ingested) is
// ingested again and said so in an event of another id, which JetStream's duplicate window
// would otherwise drop as a copy of the first.
func TestIngestAgainHasItsOwnID(t *testing.T) {
	f := newFixture(t, nil)
	s, b := newService(t, t.TempDir())
	job, in := f.request(t, "demo/hello:1.0", 0)
	if err := handle(t, s, in, 1); err != nil {
		t.Fatal(err)
	}
	first := b.Envelopes()[0].ID
	st := store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))
	if err := os.RemoveAll(st.LayerDir(in.Layer.Digest)); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	f.count.blobs.Store(0)
	in.Again = 1
	if err := handle(t, s, in, 1); err != nil {
		t.Fatal(err)
	}
	out := onlyIngested(t, b)
	if out.AlreadyPresent || out.Again != 1 {
		t.Errorf("AlreadyPresent %v Again %d, want false and 1", out.AlreadyPresent, out.Again)
	}
	if got := f.count.blobs.Load(); got != 1 {
		t.Errorf("%d blob GETs, want 1 (the layer fetched again)", got)
	}
	if !st.HasLayer(in.Layer.Digest) {
		t.Error("layer not in the store again")
	}
	second := b.Envelopes()[0].ID
	if second == first {
		t.Errorf("layer.ingested of the request again has the first one's id %s", second)
	}

	// The same request again (a redelivery) gives the same id: a storm costs one event.
	b.Reset()
	if err := handle(t, s, in, 2); err != nil {
		t.Fatal(err)
	}
	if got := onlyIngested(t, b); got.Again != 1 || b.Envelopes()[0].ID != second {
		t.Errorf("redelivered request again: Again %d id %s, want 1 and %s", got.Again, b.Envelopes()[0].ID, second)
	}
}
