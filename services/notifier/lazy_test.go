package notifier

import (
	"slices"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
)

const lazyTarget = "registry.example/demo/hello:1.0-esgz@sha256:3333333333333333333333333333333333333333333333333333333333333333"

// A wish for the relocated and the lazy outputs ends when both have, in either order and
// however often each result comes, with a completion naming both; a lazy wish alone ends with
// its image.lazified.
func TestLazyEndsTheWish(t *testing.T) {
	img := testImage()
	both := relocateJob()
	both.Outputs = []string{events.OutputRelocated, events.OutputLazy}
	both.LazyImage, both.LazyFormat = "https://registry.example/demo/hello:1.0-esgz", "estargz"
	alone := both
	alone.Outputs, alone.RelocatePrefix = []string{events.OutputLazy}, ""
	lazified := func(job events.Job) (string, any) {
		return events.ImageLazifiedType, events.ImageLazified{Job: job, Image: img, Target: lazyTarget, Format: "estargz", Layers: 2, Converted: 1, Reused: 1}
	}
	relocated := func(job events.Job) (string, any) {
		return events.ImageRelocatedType, events.ImageRelocated{Job: job, Image: img, Target: relocatedTarget}
	}
	for _, tt := range []struct {
		name  string
		job   events.Job
		order []func(events.Job) (string, any)
	}{
		{"lazy last", both, []func(events.Job) (string, any){relocated, lazified}},
		{"lazy first, redelivered", both, []func(events.Job) (string, any){lazified, lazified, relocated}},
		{"lazy alone", alone, []func(events.Job) (string, any){lazified}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			endings := &eventstest.Endings{}
			for i, ev := range tt.order {
				s, b := newService(t, &fakeLines{})
				s.Endings = endings
				typ, data := ev(tt.job)
				if err := handle(t, s, typ, tt.job, data); err != nil {
					t.Fatal(err)
				}
				if i < len(tt.order)-1 {
					if len(b.Envelopes()) != 0 {
						t.Fatalf("after %s: published %v before every output ended", typ, b.Types())
					}
					continue
				}
				if got := b.Types(); !slices.Equal(got, []string{events.ConversionCompletedType}) {
					t.Fatalf("published %v, want one %s", got, events.ConversionCompletedType)
				}
				c := eventstest.Decode[events.ConversionCompleted](t, b.Envelopes()[0])
				wantRelocated := ""
				if tt.job.Wants(events.OutputRelocated) {
					wantRelocated = relocatedTarget
				}
				if c.Lazy != lazyTarget || c.Relocated != wantRelocated {
					t.Errorf("completed names lazy %q and relocated %q, want %q and %q", c.Lazy, c.Relocated, lazyTarget, wantRelocated)
				}
			}
		})
	}
}
