package frontdoor

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// deliver is a delivery of an event of typ with id for job.
func deliver(t *testing.T, typ, id string, job events.Job, data any) *bus.Delivery {
	t.Helper()
	env, err := events.New(typ, "flatbed/test", id, job, job.Image, data)
	if err != nil {
		t.Fatal(err)
	}
	return &bus.Delivery{Event: &env.Event, Type: typ, Attempt: 1, MaxAttempts: 3}
}

// An image's state lists every output its wish asked for and follows each one's result
// event (image.exported, image.lazified, image.relocated, thin.pushed) in whatever order they
// come, with where each went; conversion.completed ends them all. A failed stage fails its
// own output; outputs done before stay done.
func TestStateFollowsEveryOutput(t *testing.T) {
	d := openDoor(t, t.TempDir(), nil)
	ctx := context.Background()
	const reg = "registry.example.org"
	img := events.Image{Registry: reg, Repository: "apps/web", Tag: "1", Name: reg + "/apps/web:1",
		Digest: "sha256:" + hex64('a'), MediaType: "application/vnd.oci.image.manifest.v1+json", ConfigDigest: "sha256:" + hex64('b'), LayerCount: 1}
	job := events.Job{WishID: "w1", CorrelationID: "run-1", Image: "https://" + reg + "/apps/web:1", CvmfsRepo: "unpacked.example.org",
		SubmittedAt: time.Now().UTC(), ThinImage: "https://" + reg + "/thin/web:1",
		Outputs:        []string{events.OutputUnpacked, events.OutputThin, events.OutputRelocated, events.OutputLazy, events.OutputExported},
		RelocatePrefix: reg + "/mirror", LazyImage: "https://" + reg + "/lazy/web:1", LazyFormat: "estargz", ExportRemote: "dir:///srv/remote"}
	key := Key(job.CvmfsRepo, job.Image)
	state := func() Image {
		t.Helper()
		var got Image
		if code, raw := d.call(t, "GET", "/api/v1/images/"+key, testToken, nil, &got); code != http.StatusOK {
			t.Fatalf("GET the image: %d %s", code, raw)
		}
		return got
	}
	outputs := func() map[string]Output {
		out := map[string]Output{}
		for _, o := range state().Outputs {
			out[o.Name] = o
		}
		return out
	}
	pinned := func(repo string) string { return reg + "/" + repo + ":1@" + img.Digest }
	thinDigest := "sha256:" + hex64('d')
	want := map[string]Output{
		events.OutputUnpacked:  {events.OutputUnpacked, OutputPending, ""},
		events.OutputThin:      {events.OutputThin, OutputPending, ""},
		events.OutputRelocated: {events.OutputRelocated, OutputPending, ""},
		events.OutputLazy:      {events.OutputLazy, OutputPending, ""},
		events.OutputExported:  {events.OutputExported, OutputPending, ""},
	}
	for i, s := range []struct {
		d     *bus.Delivery
		state string
		ended []Output
	}{
		{deliver(t, events.WishSubmittedType, "e1", job, events.WishSubmitted{Job: job}), StatePending, nil},
		{deliver(t, events.ImageResolvedType, "e2", job, events.ImageResolved{Job: job, Image: img}), StateRunning, nil},
		{deliver(t, events.ImageExportedType, "e3", job, events.ImageExported{Job: job, Image: img, Reference: pinned("apps/web")}), StateRunning,
			[]Output{{events.OutputExported, OutputDone, pinned("apps/web")}}},
		{deliver(t, events.ImageLazifiedType, "e4", job, events.ImageLazified{Job: job, Image: img, Target: pinned("lazy/web"), Format: "estargz", Layers: 1, Converted: 1}), StateRunning,
			[]Output{{events.OutputLazy, OutputDone, pinned("lazy/web")}}},
		{deliver(t, events.ThinPushedType, "e5", job, events.ThinPushed{Job: job, Image: img, FlatPath: ".flat/bb/x", PublicPath: img.Name, ThinImage: job.ThinImage, ThinDigest: thinDigest}), StateRunning,
			[]Output{{events.OutputUnpacked, OutputDone, img.Name}, {events.OutputThin, OutputDone, job.ThinImage + "@" + thinDigest}}},
		{deliver(t, events.ImageRelocatedType, "e6", job, events.ImageRelocated{Job: job, Image: img, Target: pinned("mirror/apps-web")}), StateRunning,
			[]Output{{events.OutputRelocated, OutputDone, pinned("mirror/apps-web")}}},
	} {
		if err := d.s.HandleState(ctx, s.d); err != nil {
			t.Fatal(err)
		}
		for _, o := range s.ended {
			want[o.Name] = o
		}
		if got := state(); got.State != s.state {
			t.Fatalf("step %d (%s): state %s, want %s", i, s.d.Type, got.State, s.state)
		}
		if got := outputs(); !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d (%s): outputs %+v\nwant %+v", i, s.d.Type, got, want)
		}
	}
	done := events.ConversionCompleted{Job: job, Image: img, PublicPath: img.Name, ThinImage: job.ThinImage, ThinDigest: thinDigest,
		Relocated: pinned("mirror/apps-web"), Lazy: pinned("lazy/web"), Exported: pinned("apps/web")}
	if err := d.s.HandleState(ctx, deliver(t, events.ConversionCompletedType, "e7", job, done)); err != nil {
		t.Fatal(err)
	}
	if got := outputs(); state().State != StateDone || !reflect.DeepEqual(got, want) {
		t.Errorf("completed: %s %+v\nwant %+v", state().State, got, want)
	}
	if code, page := d.call(t, "GET", "/status", testToken, nil, nil); code != http.StatusOK ||
		!strings.Contains(string(page), `<span class="output output-done" title="`+pinned("lazy/web")+`">lazy: done</span>`) {
		t.Errorf("the status page does not show the lazy output done: %d %s", code, page)
	}

	// The next submission: relocated, then the lazy stage fails; then a completion that
	// came alone (the front door missed the outputs' events) still names every result.
	job2 := job
	job2.WishID, job2.SubmittedAt = "w2", job.SubmittedAt.Add(time.Minute)
	for _, dl := range []*bus.Delivery{
		deliver(t, events.WishSubmittedType, "f1", job2, events.WishSubmitted{Job: job2}),
		deliver(t, events.ImageRelocatedType, "f2", job2, events.ImageRelocated{Job: job2, Image: img, Target: pinned("mirror/apps-web")}),
		deliver(t, events.ConversionFailedType, "f3", job2, events.ConversionFailed{Job: job2, Stage: "lazy", Error: "a hard link eStargz cannot hold"}),
	} {
		if err := d.s.HandleState(ctx, dl); err != nil {
			t.Fatal(err)
		}
	}
	got := outputs()
	if state().State != StateFailed || got[events.OutputLazy].State != OutputFailed || got[events.OutputRelocated].State != OutputDone ||
		got[events.OutputUnpacked].State != OutputPending || got[events.OutputExported].State != OutputPending {
		t.Errorf("the lazy stage failed: %+v", got)
	}
	job3 := job
	job3.WishID, job3.SubmittedAt = "w3", job.SubmittedAt.Add(2*time.Minute)
	for _, dl := range []*bus.Delivery{
		deliver(t, events.ImageRelocatedType, "g1", job3, events.ImageRelocated{Job: job3, Image: img, Target: pinned("mirror/apps-web")}),
		deliver(t, events.ConversionFailedType, "g2", job3, events.ConversionFailed{Job: job3, Stage: "resolver", Error: "manifest unknown"}),
	} {
		if err := d.s.HandleState(ctx, dl); err != nil {
			t.Fatal(err)
		}
	}
	got = outputs()
	for _, o := range state().Outputs {
		if wantState := OutputFailed; o.Name != events.OutputRelocated && o.State != wantState {
			t.Errorf("a failure of the resolver: output %s is %s, want failed", o.Name, o.State)
		}
	}
	if got[events.OutputRelocated].State != OutputDone {
		t.Errorf("a failure after the relocation: relocated is %+v, want done", got[events.OutputRelocated])
	}

	// A wish of the default outputs that skips the thin image lists the store alone.
	plain := events.Job{WishID: "p1", CorrelationID: "run-2", Image: "https://" + reg + "/apps/plain:1", CvmfsRepo: "unpacked.example.org", SubmittedAt: time.Now().UTC(), SkipThin: true}
	if err := d.s.HandleState(ctx, deliver(t, events.WishSubmittedType, "p1", plain, events.WishSubmitted{Job: plain})); err != nil {
		t.Fatal(err)
	}
	var p Image
	d.call(t, "GET", "/api/v1/images/"+Key(plain.CvmfsRepo, plain.Image), testToken, nil, &p)
	if !reflect.DeepEqual(p.Outputs, []Output{{events.OutputUnpacked, OutputPending, ""}}) {
		t.Errorf("a plain wish without a thin image: outputs %+v", p.Outputs)
	}
}
