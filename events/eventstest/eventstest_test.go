package eventstest_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
)

// recorder is a testing.TB that notes failures instead of failing the test.
type recorder struct {
	testing.TB
	errors int
}

func (r *recorder) Errorf(string, ...any) { r.errors++ }

func TestBus(t *testing.T) {
	job := eventstest.Job("registry.example/demo/hello:1.0")
	var b eventstest.Bus
	if got := b.Types(); len(got) != 0 {
		t.Fatalf("empty bus: Types = %v", got)
	}
	for _, typ := range []string{events.WishSubmittedType, events.ImageFailedType, events.WishSubmittedType} {
		env, err := events.New(typ, "flatbed/test", events.ID(typ, job.WishID), job, job.Image, events.WishSubmitted{Job: job})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.Types(), []string{events.WishSubmittedType, events.ImageFailedType, events.WishSubmittedType}; !slices.Equal(got, want) {
		t.Errorf("Types = %v, want %v", got, want)
	}
	if got := b.OfType(events.WishSubmittedType); len(got) != 2 {
		t.Errorf("OfType(%s) = %d envelopes, want 2", events.WishSubmittedType, len(got))
	}
	if got := b.OfType(events.ThinPushedType); got != nil {
		t.Errorf("OfType(%s) = %v, want none", events.ThinPushedType, got)
	}
	if envs := b.Envelopes(); len(envs) != 3 || envs[1].Type != events.ImageFailedType {
		t.Errorf("Envelopes = %v, want the three published", envs)
	}
	got := eventstest.Decode[events.WishSubmitted](t, b.OfType(events.WishSubmittedType)[0])
	if !reflect.DeepEqual(got.Job, job) {
		t.Errorf("decoded job %+v, want %+v", got.Job, job)
	}
	b.Reset()
	if got := b.Envelopes(); len(got) != 0 {
		t.Errorf("after Reset: Envelopes = %v, want none", got)
	}
}

func TestDecodeChecksType(t *testing.T) {
	job := eventstest.Job("x")
	env, err := events.New(events.WishSubmittedType, "flatbed/test", "id", job, job.Image, events.WishSubmitted{Job: job})
	if err != nil {
		t.Fatal(err)
	}
	env.Type = events.ImageFailedType // the envelope no longer matches its CloudEvent
	r := &recorder{TB: t}
	eventstest.Decode[events.WishSubmitted](r, env)
	if r.errors != 1 {
		t.Errorf("Decode of an inconsistent envelope reported %d errors, want 1", r.errors)
	}
}

func TestDelivery(t *testing.T) {
	job := eventstest.Job("registry.example/demo/hello:1.0")
	d := eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 2)
	if d.Type != events.WishSubmittedType || d.Attempt != 2 || d.MaxAttempts != 3 {
		t.Errorf("Delivery = type %q attempt %d of %d, want %q 2 of 3", d.Type, d.Attempt, d.MaxAttempts, events.WishSubmittedType)
	}
	if got, want := d.Event.Type(), events.CEType(events.WishSubmittedType); got != want {
		t.Errorf("CloudEvent type = %q, want %q", got, want)
	}
	if got, want := d.Event.ID(), events.ID(events.WishSubmittedType, job.WishID, t.Name()); got != want {
		t.Errorf("CloudEvent ID = %q, want %q", got, want)
	}
	var data events.WishSubmitted
	if err := d.Decode(&data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(data.Job, job) {
		t.Errorf("decoded job %+v, want %+v", data.Job, job)
	}
}

func TestDescribeAndDescriptions(t *testing.T) {
	img, err := random.Image(64, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := eventstest.Describe(t, img, "registry.example", "demo/x", "1")
	d, _ := img.Digest()
	cn, _ := img.ConfigName()
	if got.Image.Digest != d.String() || got.Image.ConfigDigest != cn.String() {
		t.Errorf("Digest, ConfigDigest = %s, %s, want %s, %s", got.Image.Digest, got.Image.ConfigDigest, d, cn)
	}
	if got.Image.Name != "registry.example/demo/x:1" || got.Image.LayerCount != 2 {
		t.Errorf("Name, LayerCount = %q, %d", got.Image.Name, got.Image.LayerCount)
	}
	if err := got.Image.Validate(); err != nil {
		t.Errorf("reference does not validate: %v", err)
	}
	raw, _ := img.RawManifest()
	if string(got.Manifest) != string(raw) {
		t.Errorf("Manifest = %s, want %s", got.Manifest, raw)
	}
	layers, _ := img.Layers()
	if len(got.Layers) != len(layers) {
		t.Fatalf("%d layers, want %d", len(got.Layers), len(layers))
	}
	for i, l := range layers {
		ld, _ := l.Digest()
		diff, _ := l.DiffID()
		size, _ := l.Size()
		if got.Layers[i].Digest != ld.String() || got.Layers[i].DiffID != diff.String() || got.Layers[i].Size != size {
			t.Errorf("layer %d = %+v, want digest %s diffID %s size %d", i, got.Layers[i], ld, diff, size)
		}
	}
	var s eventstest.Descriptions
	if _, err := s.Get(context.Background(), got.Image); !errors.Is(err, events.ErrNoDescription) {
		t.Errorf("Get before Put: %v, want ErrNoDescription", err)
	}
	if err := s.Put(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	back, err := s.Get(context.Background(), got.Image)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Layers) != 2 || back.Layers[1] != got.Layers[1] {
		t.Errorf("read back %+v", back.Layers)
	}
}
