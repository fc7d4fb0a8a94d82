package notifier

import (
	"slices"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
)

const exportedRef = "registry.example/demo/hello:1.0@sha256:2222222222222222222222222222222222222222222222222222222222222222"

// A wish for the relocated and the exported outputs ends when both have, in either order, and
// its completion names the exported reference beside the relocated one; an export alone ends
// with its image.exported.
func TestExportedEndsTheWish(t *testing.T) {
	img := testImage()
	both := relocateJob()
	both.Outputs = []string{events.OutputRelocated, events.OutputExported}
	both.ExportRemote = "dir:///srv/images"
	alone := relocateJob()
	alone.Outputs, alone.RelocatePrefix, alone.ExportRemote = []string{events.OutputExported}, "", "s3://bucket/images?region=us-east-1"
	exported := func(job events.Job) (string, any) {
		return events.ImageExportedType, events.ImageExported{Job: job, Image: img, Reference: exportedRef, BlobsUploaded: 3, BlobsPresent: 2, BytesUploaded: 100}
	}
	relocated := func(job events.Job) (string, any) {
		return events.ImageRelocatedType, events.ImageRelocated{Job: job, Image: img, Target: relocatedTarget}
	}
	for _, tt := range []struct {
		name  string
		job   events.Job
		order []func(events.Job) (string, any)
	}{
		{"exported last", both, []func(events.Job) (string, any){relocated, exported}},
		{"exported first, redelivered", both, []func(events.Job) (string, any){exported, exported, relocated}},
		{"exported alone", alone, []func(events.Job) (string, any){exported}},
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
				if c.Exported != exportedRef || c.Relocated != wantRelocated || c.Image != img || c.Repository != "" {
					t.Errorf("completed = %+v, want exported %s and relocated %q", c, exportedRef, wantRelocated)
				}
			}
		})
	}
}
