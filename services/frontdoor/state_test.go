package frontdoor

import (
	"context"
	"net/http"
	"testing"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

func delivery(t *testing.T, typ, id string, data any) *bus.Delivery {
	t.Helper()
	var job events.Job
	switch v := data.(type) {
	case events.WishSubmitted:
		job = v.Job
	case events.ImageResolved:
		job = v.Job
	case events.ConversionCompleted:
		job = v.Job
	case events.ConversionFailed:
		job = v.Job
	}
	return deliver(t, typ, id, job, data)
}

// An image's state follows its events: pending, running, done; a redelivery changes
// nothing, an event of an earlier submission is not taken, a new submission that fails says
// why; the history lists each state with its event.
func TestStateFollowsEvents(t *testing.T) {
	d := openDoor(t, t.TempDir(), nil)
	ctx := context.Background()
	img := events.Image{Registry: "registry.example.org", Repository: "apps/web", Tag: "1", Name: "registry.example.org/apps/web:1",
		Digest: "sha256:" + hex64('a'), MediaType: "application/vnd.oci.image.manifest.v1+json", ConfigDigest: "sha256:" + hex64('b'), LayerCount: 1}
	first := time.Now().UTC().Add(-time.Hour)
	job := events.Job{WishID: "w1", CorrelationID: "run-1", Image: "https://registry.example.org/apps/web:1", CvmfsRepo: "unpacked.example.org", SubmittedAt: first}
	key := Key(job.CvmfsRepo, job.Image)
	state := func() Image {
		var got Image
		if code, raw := d.call(t, "GET", "/api/v1/images/"+key, testToken, nil, &got); code != http.StatusOK {
			t.Fatalf("GET the image: %d %s", code, raw)
		}
		return got
	}
	steps := []struct {
		d    *bus.Delivery
		want string
	}{
		{delivery(t, events.WishSubmittedType, "e1", events.WishSubmitted{Job: job}), StatePending},
		{delivery(t, events.ImageResolvedType, "e2", events.ImageResolved{Job: job, Image: img}), StateRunning},
		{delivery(t, events.ImageResolvedType, "e2", events.ImageResolved{Job: job, Image: img}), StateRunning}, // redelivered
		{delivery(t, events.ConversionCompletedType, "e3", events.ConversionCompleted{Job: job, Image: img, PublicPath: img.Name}), StateDone},
	}
	for i, s := range steps {
		if err := d.s.HandleState(ctx, s.d); err != nil {
			t.Fatal(err)
		}
		if got := state(); got.State != s.want || got.Event.ID != s.d.Event.ID() {
			t.Fatalf("step %d (%s): state %+v, want %s", i, s.d.Type, got, s.want)
		}
	}
	if got := state(); got.PublicPath != img.Name || got.Image != job.Image || got.WishID != "w1" {
		t.Errorf("done: %+v", got)
	}
	var h History
	if code, raw := d.call(t, "GET", "/api/v1/images/"+key+"/history", testToken, nil, &h); code != http.StatusOK || len(h.States) != 3 {
		t.Fatalf("history: %d %s (want 3 states: the redelivery adds none)", code, raw)
	}
	for i, want := range []string{events.WishSubmittedType, events.ImageResolvedType, events.ConversionCompletedType} {
		if h.States[i].Event.Type != want {
			t.Errorf("history[%d] is %s, want %s", i, h.States[i].Event.Type, want)
		}
	}

	// A new submission fails; a late event of the first one changes nothing.
	job2 := job
	job2.WishID, job2.SubmittedAt = "w2", first.Add(time.Minute)
	job2.Image += "@sha256:" + hex64('c') // pinned to a digest, it is still the tag's image
	for _, dl := range []*bus.Delivery{
		delivery(t, events.WishSubmittedType, "f1", events.WishSubmitted{Job: job2}),
		delivery(t, events.ConversionFailedType, "f2", events.ConversionFailed{Job: job2, Stage: "resolver", Error: "manifest unknown"}),
		delivery(t, events.ImageResolvedType, "e9", events.ImageResolved{Job: job, Image: img}),
	} {
		if err := d.s.HandleState(ctx, dl); err != nil {
			t.Fatal(err)
		}
	}
	if got := state(); got.State != StateFailed || got.Error != "manifest unknown" || got.Stage != "resolver" || got.WishID != "w2" {
		t.Errorf("after the failed submission: %+v", got)
	}
	var list ImageList
	if code, raw := d.call(t, "GET", "/api/v1/images", testToken, nil, &list); code != http.StatusOK || len(list.Images) != 1 || list.Images[0].State != StateFailed {
		t.Errorf("GET /api/v1/images: %d %s", code, raw)
	}
}

func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
