package notifier

import (
	"slices"
	"strings"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
)

const relocatedTarget = "mirror.example/m/demo-hello-0123456789abcdef0123456789abcdef:1.0@sha256:1111111111111111111111111111111111111111111111111111111111111111"

// relocateJob asks for the relocated output alone: no store repository.
func relocateJob() events.Job {
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	job.CvmfsRepo = ""
	job.Outputs = []string{events.OutputRelocated}
	job.RelocatePrefix = "mirror.example/m"
	return job
}

// A relocate-only wish ends with its image.relocated: no record, no store repository, and
// its image.resolved says nothing.
func TestRelocatedAlone(t *testing.T) {
	s, b := newService(t, &fakeLines{})
	endings := &eventstest.Endings{}
	s.Endings = endings
	job := relocateJob()
	img := testImage()
	if err := handle(t, s, events.ImageResolvedType, job, events.ImageResolved{Job: job, Image: img}); err != nil {
		t.Fatal(err)
	}
	if len(b.Envelopes()) != 0 {
		t.Fatalf("published %v for image.resolved", b.Types())
	}
	if err := handle(t, s, events.ImageRelocatedType, job, events.ImageRelocated{Job: job, Image: img, Target: relocatedTarget, Seconds: 1}); err != nil {
		t.Fatal(err)
	}
	if got := b.Types(); !slices.Equal(got, []string{events.ConversionCompletedType}) {
		t.Fatalf("published %v, want one %s", got, events.ConversionCompletedType)
	}
	c := eventstest.Decode[events.ConversionCompleted](t, b.Envelopes()[0])
	if c.Relocated != relocatedTarget || c.Repository != "" || c.PublicPath != "" || c.Image != img {
		t.Errorf("completed = %+v, want the relocated target, no repository", c)
	}
	if endings.Recorded() != 0 {
		t.Error("a wish with one output was recorded")
	}
}

// A wish for the store and a relocation ends when both have, in either order, however often
// each result is delivered, and by whichever notifier instance sees the last (the record is
// shared); the completion carries what both produced.
func TestSeveralOutputsEndTogether(t *testing.T) {
	job := relocateJob()
	job.CvmfsRepo = "unpacked.cern.ch"
	job.Outputs = []string{events.OutputUnpacked, events.OutputThin, events.OutputRelocated}
	job.ThinImage = "https://registry.example/demo/hello_thin:1.0"
	img := testImage()
	thin := func() (string, any) {
		return events.ThinPushedType, events.ThinPushed{Job: job, Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, ThinImage: job.ThinImage, ThinDigest: thinDigest}
	}
	converted := func() (string, any) {
		return events.ImageResolvedType, events.ImageResolved{Job: job, Image: img, AlreadyConverted: true}
	}
	convertedThin := func() (string, any) { // the thin pusher's answer to converted
		return events.ThinPushedType, events.ThinPushed{Job: job, Image: img, FlatPath: flatRel(img.ConfigDigest), PublicPath: img.Name,
			ThinImage: job.ThinImage, ThinDigest: thinDigest, AlreadyConverted: true}
	}
	relocated := func() (string, any) {
		return events.ImageRelocatedType, events.ImageRelocated{Job: job, Image: img, Target: relocatedTarget}
	}
	tests := []struct {
		name  string
		order []func() (string, any) // the last one ends the wish
		want  events.ConversionCompleted
	}{
		{"thin first", []func() (string, any){thin, thin, relocated},
			events.ConversionCompleted{FlatPath: ".flat/0f/x", PublicPath: img.Name, ThinImage: job.ThinImage, ThinDigest: thinDigest, Relocated: relocatedTarget}},
		{"relocated first, redelivered", []func() (string, any){relocated, relocated, thin},
			events.ConversionCompleted{FlatPath: ".flat/0f/x", PublicPath: img.Name, ThinImage: job.ThinImage, ThinDigest: thinDigest, Relocated: relocatedTarget}},
		{"already converted", []func() (string, any){relocated, converted, convertedThin},
			events.ConversionCompleted{FlatPath: flatRel(img.ConfigDigest), PublicPath: img.Name, ThinImage: job.ThinImage, ThinDigest: thinDigest,
				AlreadyConverted: true, Relocated: relocatedTarget}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endings := &eventstest.Endings{}
			for i, ev := range tt.order {
				s, b := newService(t, &fakeLines{}) // each delivery to a notifier of its own: a restart in between
				s.Endings = endings
				typ, data := ev()
				if err := handle(t, s, typ, job, data); err != nil {
					t.Fatal(err)
				}
				if i < len(tt.order)-1 {
					if len(b.Envelopes()) != 0 {
						t.Fatalf("after %s (%d of %d): published %v before every output ended", typ, i+1, len(tt.order), b.Types())
					}
					continue
				}
				if got := b.Types(); !slices.Equal(got, []string{events.ConversionCompletedType}) {
					t.Fatalf("published %v, want one %s", got, events.ConversionCompletedType)
				}
				c := eventstest.Decode[events.ConversionCompleted](t, b.Envelopes()[0])
				if c.Image != img || c.FlatPath != tt.want.FlatPath || c.PublicPath != tt.want.PublicPath || c.ThinImage != tt.want.ThinImage ||
					c.ThinDigest != tt.want.ThinDigest || c.Relocated != tt.want.Relocated || c.AlreadyConverted != tt.want.AlreadyConverted {
					t.Errorf("completed = %+v, want %+v", c, tt.want)
				}
				if !strings.HasSuffix(c.Repository, job.CvmfsRepo) {
					t.Errorf("Repository = %q, want the store repository", c.Repository)
				}
			}
			if endings.Recorded() != 0 {
				t.Error("the wish's record was kept after it ended")
			}
		})
	}
}

// Without a record of outputs the notifier cannot join a wish's several outputs, and says so
// as a permanent error.
func TestSeveralOutputsNeedEndings(t *testing.T) {
	s, b := newService(t, &fakeLines{})
	job := relocateJob()
	job.CvmfsRepo = "unpacked.cern.ch"
	job.Outputs = []string{events.OutputUnpacked, events.OutputRelocated}
	err := handle(t, s, events.ImageRelocatedType, job, events.ImageRelocated{Job: job, Image: testImage(), Target: relocatedTarget})
	if !events.IsPermanent(err) || len(b.Envelopes()) != 0 {
		t.Errorf("Handle = %v, published %v; want a permanent error and nothing published", err, b.Types())
	}
}

// A relocate-only wish that fails is reported without DUCC lines: they speak of the store.
func TestRelocationFailedWritesNoLines(t *testing.T) {
	lines := &fakeLines{}
	s, b := newService(t, lines)
	job := relocateJob()
	img := testImage()
	in := events.ImageFailed{Job: job, Image: &img, Stage: "relocator", Error: "digest not preserved: relocating registry.example/demo/hello:1.0"}
	if err := handle(t, s, events.ImageFailedType, job, in); err != nil {
		t.Fatal(err)
	}
	if got := b.Types(); !slices.Equal(got, []string{events.ConversionFailedType}) {
		t.Fatalf("published %v, want one %s", got, events.ConversionFailedType)
	}
	if f := eventstest.Decode[events.ConversionFailed](t, b.Envelopes()[0]); f.Stage != "relocator" || f.Error != in.Error {
		t.Errorf("failed = %+v", f)
	}
	if len(lines.lines) != 0 {
		t.Errorf("wrote %v", lines.lines)
	}
}

// A wish with several outputs fails when one fails, and the others ending later do not
// complete it.
func TestOneOutputFailedFailsTheWish(t *testing.T) {
	s, b := newService(t, &fakeLines{})
	s.Endings = &eventstest.Endings{}
	job := relocateJob()
	job.CvmfsRepo = "unpacked.cern.ch"
	job.Outputs = []string{events.OutputUnpacked, events.OutputRelocated}
	img := testImage()
	if err := handle(t, s, events.ImageFailedType, job, events.ImageFailed{Job: job, Image: &img, Stage: "relocator", Error: "digest not preserved"}); err != nil {
		t.Fatal(err)
	}
	if err := handle(t, s, events.ThinPushedType, job, events.ThinPushed{Job: job, Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, Skipped: true}); err != nil {
		t.Fatal(err)
	}
	if got := b.Types(); !slices.Equal(got, []string{events.ConversionFailedType}) {
		t.Errorf("published %v, want only %s", got, events.ConversionFailedType)
	}
}
