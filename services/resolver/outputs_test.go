package resolver

import (
	"context"
	"path/filepath"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
)

// Only the unpacked output asks for layers, a stored description and the already-converted
// shortcut: a relocate-only wish is resolved, and relocated even when the store holds it.
func TestResolveByOutputs(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	want := eventstest.Describe(t, demo(t, "demo/hello:1.0").Image, host, "demo/hello", "1.0")
	converted := storeState{manifest: want.Manifest, flat: true, public: true}
	tests := []struct {
		name      string
		outputs   []string
		repo      string
		store     bool // the repository holds the image converted
		wantDone  bool
		wantReqs  int
		wantStore bool // a description is stored
	}{
		{"relocated alone, no repository", []string{events.OutputRelocated}, "", false, false, 0, false},
		{"relocated alone, converted in the store", []string{events.OutputRelocated}, "unpacked.cern.ch", true, false, 0, false},
		{"unpacked and relocated", []string{events.OutputUnpacked, events.OutputRelocated}, "unpacked.cern.ch", false, false, len(want.Layers), true},
		{"unpacked and relocated, converted", []string{events.OutputUnpacked, events.OutputRelocated}, "unpacked.cern.ch", true, true, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := newService(t)
			job := eventstest.Job("http://" + host + "/demo/hello:1.0")
			job.Outputs, job.CvmfsRepo, job.RelocatePrefix = tt.outputs, tt.repo, "mirror.example/m"
			if tt.store {
				writeStore(t, store.New(filepath.Join(s.StoreRoot, tt.repo)), host+"/demo/hello:1.0", want.Image.ConfigDigest, converted)
			}
			if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
				t.Fatal(err)
			}
			res := b.OfType(events.ImageResolvedType)
			if len(res) != 1 {
				t.Fatalf("published %v, want one %s", b.Types(), events.ImageResolvedType)
			}
			r := eventstest.Decode[events.ImageResolved](t, res[0])
			if r.AlreadyConverted != tt.wantDone || r.Image.Digest != want.Image.Digest || r.Image.ConfigDigest != want.Image.ConfigDigest {
				t.Errorf("resolved %+v (already converted %v), want %s, already converted %v", r.Image, r.AlreadyConverted, want.Image.Digest, tt.wantDone)
			}
			if got := len(b.OfType(events.LayerRequestedType)); got != tt.wantReqs {
				t.Errorf("%d layer.requested events, want %d", got, tt.wantReqs)
			}
			if got := len(descsOf(s).puts) > 0; got != tt.wantStore {
				t.Errorf("description stored = %v, want %v", got, tt.wantStore)
			}
		})
	}
}
