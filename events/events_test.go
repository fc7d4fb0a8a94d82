package events_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/events/schema"
)

func sampleJob() events.Job {
	return events.Job{WishID: "w", CorrelationID: "c", Image: "http://127.0.0.1:5000/données/x:1", CvmfsRepo: "unpacked.example.org", SubmittedAt: time.Now()}
}

func sampleImage() events.Image {
	return events.Image{Registry: "r.example", Repository: "x", Tag: "1", Name: "r.example/x:1", Digest: "sha256:" + strings.Repeat("a", 64),
		MediaType: "application/vnd.oci.image.manifest.v1+json", ConfigDigest: "sha256:" + strings.Repeat("b", 64), LayerCount: 1}
}

func sampleLayer() events.Layer {
	return events.Layer{Digest: "sha256:" + strings.Repeat("c", 64), DiffID: "sha256:" + strings.Repeat("d", 64),
		MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: 1}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	job := sampleJob()
	env, err := events.New(events.WishSubmittedType, "flatbed/test", events.ID(events.WishSubmittedType, "w"), job, job.Image, events.WishSubmitted{Job: job})
	if err != nil {
		t.Fatal(err)
	}
	m, err := env.Msg(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range m.Header {
		for _, v := range vs {
			for _, r := range v {
				if r > 0x7e {
					t.Errorf("header %s=%q is not ASCII", k, v)
				}
			}
		}
	}
	if m.Header.Get("Nats-Msg-Id") != env.ID {
		t.Errorf("Nats-Msg-Id = %q, want %q", m.Header.Get("Nats-Msg-Id"), env.ID)
	}
	ev, err := events.Parse(m)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Subject() != job.Image {
		t.Errorf("subject = %q, want %q", ev.Subject(), job.Image)
	}
	if events.ShortType(ev) != events.WishSubmittedType || !strings.HasSuffix(ev.DataSchema(), "/wish.submitted.json") {
		t.Errorf("type %q schema %q", ev.Type(), ev.DataSchema())
	}
	var w events.WishSubmitted
	if err := events.Decode(ev, &w); err != nil || w.Job.Image != job.Image {
		t.Errorf("decoded %+v %v", w, err)
	}
	if err := schema.Validate(events.WishSubmittedType, ev.Data()); err != nil {
		t.Error(err)
	}
}

func TestFailedIDs(t *testing.T) {
	job := sampleJob()
	a, err := events.Failed("flatbed/test", events.ImageFailed{Job: job, Stage: "ingester", Layer: "sha256:aa", Error: "x"})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := events.Failed("flatbed/test", events.ImageFailed{Job: job, Stage: "ingester", Layer: "sha256:aa", Error: "other words"})
	other, _ := events.Failed("flatbed/test", events.ImageFailed{Job: job, Stage: "ingester", Layer: "sha256:bb", Error: "x"})
	if a.ID != again.ID {
		t.Errorf("the same failure got ids %s and %s: a redelivery would not be deduplicated", a.ID, again.ID)
	}
	if a.ID == other.ID {
		t.Errorf("failures of two layers share id %s", a.ID)
	}
	if a.Type != events.ImageFailedType || a.Event.Subject() != job.Image {
		t.Errorf("type %s subject %s", a.Type, a.Event.Subject())
	}
	if err := schema.Validate(events.ImageFailedType, a.Event.Data()); err != nil {
		t.Error(err)
	}
}

func digestOf(b []byte) string {
	h := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(h[:])
}
