package flattener

import (
	"context"
	"os"
	"strings"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
)

// handleAgain delivers layer.ingested of layer index with Again n.
func (x *setup) handleAgain(t *testing.T, index, n, attempt int) error {
	t.Helper()
	in := x.ingested(index)
	in.Again = n
	return x.s.Handle(context.Background(), eventstest.Delivery(t, events.LayerIngestedType, x.job, in, attempt))
}

// A layer reported ingested that is gone from the store before the image's last layer comes
// is requested again (once, however often the events are redelivered), and the layer.ingested
// of that request completes the join.
func TestLayerGoneIsRequestedAgain(t *testing.T) {
	x := newSetup(t, "demo/hello:2.0", "registry.example/demo/hello:2.0")
	ingest(t, x.st, x.n, 0)
	if err := x.handle(t, 0, 1); err != nil { // layer 0 in, the others not yet: wait
		t.Fatal(err)
	}
	if n := len(x.b.Envelopes()); n != 0 {
		t.Fatalf("published %v while layers were only not yet ingested", x.b.Types())
	}
	if err := os.RemoveAll(x.st.LayerDir(x.desc.Layers[0].Digest)); err != nil { // gone
		t.Fatal(err)
	}
	ingest(t, x.st, x.n, 1)
	ingest(t, x.st, x.n, 2)
	for _, i := range []int{1, 2, 2, 1} { // the last ones, redelivered too
		if err := x.handle(t, i, 1); err != nil {
			t.Fatal(err)
		}
	}
	reqs := x.b.OfType(events.LayerRequestedType)
	if len(reqs) == 0 {
		t.Fatalf("published %v, want layer 0 requested again", x.b.Types())
	}
	ids := map[string]bool{}
	for _, env := range reqs {
		ids[env.ID] = true
		r := eventstest.Decode[events.LayerRequested](t, env)
		if r.Index != 0 || r.Layer != x.desc.Layers[0] || r.Again != 1 || r.Job.WishID != x.job.WishID {
			t.Errorf("requested index %d layer %s again %d, want index 0 %s again 1", r.Index, r.Layer.Digest, r.Again, x.desc.Layers[0].Digest)
		}
	}
	if len(ids) != 1 {
		t.Errorf("%d distinct request ids for one layer gone once, want 1 (JetStream drops the rest)", len(ids))
	}
	if n := len(x.b.OfType(events.ImageFlattenedType)); n != 0 {
		t.Fatalf("flattened without layer 0")
	}
	// The ingester brings it back and says so with Again 1.
	ingest(t, x.st, x.n, 0)
	x.b.Reset()
	if err := x.handleAgain(t, 0, 1, 1); err != nil {
		t.Fatal(err)
	}
	if got := x.b.Types(); len(got) != 1 || got[0] != events.ImageFlattenedType {
		t.Fatalf("published %v after the layer came back, want image.flattened", got)
	}
}

// A layer.ingested whose own layer is not in the store (removed before the flattener saw
// it) asks for it again; a layer that keeps going away fails the wish naming it after
// events.MaxAgain requests, instead of asking for ever.
func TestLayerGoneAgainAndAgainFails(t *testing.T) {
	x := newSetup(t, "demo/hello:1.0", "registry.example/demo/hello:1.0")
	ingest(t, x.st, x.n, 1)
	l := x.desc.Layers[0]
	for n := 0; n <= events.MaxAgain; n++ {
		x.b.Reset()
		if err := x.handleAgain(t, 0, n, 1); err != nil { // layer 0 said ingested, not there
			t.Fatal(err)
		}
		got := x.b.Types()
		if n < events.MaxAgain {
			if len(got) != 1 || got[0] != events.LayerRequestedType {
				t.Fatalf("Again %d: published %v, want one layer.requested", n, got)
			}
			if r := eventstest.Decode[events.LayerRequested](t, x.b.Envelopes()[0]); r.Again != n+1 || r.Layer.Digest != l.Digest {
				t.Errorf("Again %d: requested %s again %d, want %s again %d", n, r.Layer.Digest, r.Again, l.Digest, n+1)
			}
			continue
		}
		if len(got) != 1 || got[0] != events.ImageFailedType {
			t.Fatalf("Again %d: published %v, want image.failed", n, got)
		}
		f := eventstest.Decode[events.ImageFailed](t, x.b.Envelopes()[0])
		if !strings.Contains(f.Error, l.Digest) || !strings.Contains(f.Error, "went missing") {
			t.Errorf("failure %q does not name the layer that went missing", f.Error)
		}
	}
}
