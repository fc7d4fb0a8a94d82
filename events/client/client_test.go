package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"flatbed.dev/events"
	"flatbed.dev/events/client"
	"flatbed.dev/events/schema"
)

func TestPublishWish(t *testing.T) {
	nc, js := server(t, true)
	ctx := testContext(t)
	c := newClient(t, nc, client.WithSource("flatbed/test"), client.WithCorrelationID("run-1"))
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.PublishWish(ctx, client.Wish{Image: "registry.example/demo/hello:1.0", CvmfsRepo: "unpacked.example.org", User: "me"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, events.Subject(events.WishSubmittedType))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := raw.Header.Get(nats.MsgIdHdr), events.ID(events.WishSubmittedType, id); got != want {
		t.Errorf("Nats-Msg-Id = %q, want %q", got, want)
	}
	ev, err := events.Parse(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		t.Fatal(err)
	}
	if got := events.ShortType(ev); got != events.WishSubmittedType || ev.Source() != "flatbed/test" {
		t.Errorf("type %q source %q", ev.Type(), ev.Source())
	}
	if ev.Extensions()[events.ExtWishID] != id || ev.Extensions()[events.ExtCorrelationID] != "run-1" {
		t.Errorf("extensions %v, want wish %s and correlation run-1", ev.Extensions(), id)
	}
	if err := schema.Validate(events.WishSubmittedType, ev.Data()); err != nil {
		t.Error(err)
	}
	var w events.WishSubmitted
	if err := events.Decode(ev, &w); err != nil {
		t.Fatal(err)
	}
	if j := w.Job; j.WishID != id || j.Image != "registry.example/demo/hello:1.0" || j.CvmfsRepo != "unpacked.example.org" ||
		!j.SkipThin || j.User != "me" || j.SubmittedAt.IsZero() {
		t.Errorf("job %+v", j)
	}

	// The same wish again is a duplicate JetStream drops; a thin image is asked for by naming it.
	if _, err := c.PublishWish(ctx, client.Wish{WishID: id, Image: "registry.example/demo/hello:1.0", CvmfsRepo: "unpacked.example.org"}); err != nil {
		t.Fatal(err)
	}
	thin, err := c.PublishWish(ctx, client.Wish{Image: "registry.example/demo/hello:2.0", CvmfsRepo: "unpacked.example.org",
		ThinImage: "registry.example/thin/demo/hello:2.0", CorrelationID: "run-2"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err = stream.GetLastMsgForSubject(ctx, events.Subject(events.WishSubmittedType))
	if err != nil {
		t.Fatal(err)
	}
	if raw.Sequence != 2 {
		t.Errorf("the third wish is message %d, want 2: the repeated one was stored", raw.Sequence)
	}
	ev, _ = events.Parse(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	w = events.WishSubmitted{}
	if err := events.Decode(ev, &w); err != nil {
		t.Fatal(err)
	}
	if w.Job.WishID != thin || w.Job.SkipThin || w.Job.ThinImage != "registry.example/thin/demo/hello:2.0" || w.Job.CorrelationID != "run-2" {
		t.Errorf("job %+v", w.Job)
	}
}

func TestPublishWishRefusesInvalidWishes(t *testing.T) {
	nc, js := server(t, true)
	ctx := testContext(t)
	c := newClient(t, nc)
	for name, w := range map[string]client.Wish{
		"repository with ..": {Image: "registry.example/x:1", CvmfsRepo: "../etc"},
		"no repository":      {Image: "registry.example/x:1"},
		"no image":           {CvmfsRepo: "unpacked.example.org"},
		"image with space":   {Image: "registry.example/x:1 -rf", CvmfsRepo: "unpacked.example.org"},
		"wish id with slash": {Image: "registry.example/x:1", CvmfsRepo: "unpacked.example.org", WishID: "../x"},
	} {
		if _, err := c.PublishWish(ctx, w); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("%s: PublishWish = %v, want ErrInvalid", name, err)
		}
	}
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 0 {
		t.Errorf("after invalid wishes the stream holds %d messages (%v), want 0", info.State.Msgs, err)
	}
}

func TestNoPipeline(t *testing.T) {
	nc, _ := server(t, false)
	ctx := testContext(t)
	c := newClient(t, nc)
	if _, err := c.PublishWish(ctx, client.Wish{Image: "registry.example/x:1", CvmfsRepo: "unpacked.example.org"}); err == nil || !strings.Contains(err.Error(), "no flatbed pipeline") {
		t.Errorf("PublishWish without a pipeline = %v, want an error saying so", err)
	}
	if _, err := c.Follow(ctx, client.Filter{}); err == nil || !strings.Contains(err.Error(), "no flatbed pipeline") {
		t.Errorf("Follow without a pipeline = %v, want an error saying so", err)
	}
}

// Convert against a stand-in for the pipeline that answers every wish, after a result of
// another wish and an unreadable one that the client must pass over.
func TestConvert(t *testing.T) {
	nc, js := server(t, true)
	ctx := testContext(t)
	sub, err := nc.Subscribe(events.Subject(events.WishSubmittedType), func(m *nats.Msg) {
		ev, err := events.Parse(m)
		if err != nil {
			t.Error(err)
			return
		}
		var w events.WishSubmitted
		if err := events.Decode(ev, &w); err != nil {
			t.Error(err)
			return
		}
		resultFor(t, js, job("someone-else", w.Job.CorrelationID, w.Job.Image), "")
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: events.Subject(events.ConversionCompletedType), Data: []byte("garbage")}); err != nil {
			t.Error(err)
		}
		reason := ""
		if strings.Contains(w.Job.Image, "broken") {
			reason = "manifest unknown"
		}
		resultFor(t, js, w.Job, reason)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	c := newClient(t, nc)

	r, err := c.Convert(ctx, client.Wish{Image: "registry.example/demo/hello:1.0", CvmfsRepo: "unpacked.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Completed == nil || r.Failed != nil || r.Job().WishID == "someone-else" || r.Completed.PublicPath != "registry.example/demo/hello:1.0" {
		t.Errorf("Convert = %+v", r)
	}

	r, err = c.Convert(ctx, client.Wish{Image: "registry.example/demo/broken:1", CvmfsRepo: "unpacked.example.org"})
	var ce *client.ConversionError
	if !errors.As(err, &ce) || r.Failed == nil || ce.Failed != r.Failed {
		t.Fatalf("Convert of a broken image = %+v, %v; want its conversion.failed as a ConversionError", r, err)
	}
	if want := "converting registry.example/demo/broken:1 failed in the resolver: manifest unknown"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestFollowAndWait(t *testing.T) {
	nc, js := server(t, true)
	ctx := testContext(t)
	c := newClient(t, nc)
	resultFor(t, js, job("a", "run-1", "registry.example/x:1"), "")
	resultFor(t, js, job("b", "run-2", "registry.example/x:2"), "no such tag")
	time.Sleep(5 * time.Millisecond)
	since := time.Now()
	time.Sleep(5 * time.Millisecond)
	resultFor(t, js, job("c", "run-1", "registry.example/x:3"), "")
	resultFor(t, js, job("d", "run-1", "registry.example/x:4"), "")

	r, err := c.Wait(ctx, "b")
	if r.Failed == nil || r.Job().WishID != "b" || err == nil {
		t.Errorf("Wait for a result stored before = %+v, %v", r, err)
	}
	for _, tc := range []struct {
		name   string
		filter client.Filter
		want   []string
	}{
		{"one run from the start", client.Filter{CorrelationID: "run-1", FromSequence: 1}, []string{"a", "c", "d"}},
		{"since a time", client.Filter{Since: since}, []string{"c", "d"}},
		{"from a sequence", client.Filter{FromSequence: 4}, []string{"d"}},
		{"one wish", client.Filter{WishID: "c", FromSequence: 1}, []string{"c"}},
	} {
		got := wishes(t, ctx, c, tc.filter, len(tc.want))
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: Follow yields %v, want %v", tc.name, got, tc.want)
		}
	}

	fctx, cancel := context.WithCancel(ctx)
	now, err := c.Follow(fctx, client.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	resultFor(t, js, job("e", "run-3", "registry.example/x:5"), "")
	if r := <-now; r.Job().WishID != "e" || r.Sequence != 5 {
		t.Errorf("Follow from now yields %s (sequence %d) first, want e (5)", r.Job().WishID, r.Sequence)
	}
	cancel()
	for range now {
	}

	wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(wctx, "never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait for a wish with no result = %v, want the context's deadline", err)
	}
}

// wishes follows f until it has n results, and returns their wish ids.
func wishes(t *testing.T, ctx context.Context, c *client.Client, f client.Filter, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	results, err := c.Follow(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for r := range results {
		got = append(got, r.Job().WishID)
		if len(got) == n {
			break
		}
	}
	return got
}

// A wish may ask for other outputs than the store: they reach the pipeline as asked, and a
// wish that asks for a relocation without a prefix is refused before it is published.
func TestPublishWishOutputs(t *testing.T) {
	nc, js := server(t, true)
	ctx := testContext(t)
	c := newClient(t, nc)
	id, err := c.PublishWish(ctx, client.Wish{Image: "registry.example/demo/hello:1.0", Outputs: []string{events.OutputRelocated},
		RelocatePrefix: "mirror.example/team", RelocateNoFlatten: true})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := stream.GetLastMsgForSubject(ctx, events.Subject(events.WishSubmittedType))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Parse(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	if err != nil {
		t.Fatal(err)
	}
	var w events.WishSubmitted
	if err := events.Decode(ev, &w); err != nil {
		t.Fatal(err)
	}
	if j := w.Job; j.WishID != id || len(j.Outputs) != 1 || j.Outputs[0] != events.OutputRelocated || j.RelocatePrefix != "mirror.example/team" || !j.RelocateNoFlatten {
		t.Errorf("job %+v", j)
	}
	if _, err := c.PublishWish(ctx, client.Wish{Image: "registry.example/demo/hello:1.0", Outputs: []string{events.OutputExported},
		ExportRemote: "s3://bucket/images?region=us-east-1", ExportCompress: "zstd"}); err != nil {
		t.Errorf("an export: %v", err)
	}
	if _, err := c.PublishWish(ctx, client.Wish{Image: "registry.example/demo/hello:1.0", Outputs: []string{events.OutputExported},
		ExportRemote: "s3://key:secret@bucket/images"}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("an export to a remote with credentials: %v, want ErrInvalid", err)
	}
	if _, err := c.PublishWish(ctx, client.Wish{Image: "registry.example/demo/hello:1.0", Outputs: []string{events.OutputRelocated}}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("a relocation without a prefix: %v, want ErrInvalid", err)
	}
}
