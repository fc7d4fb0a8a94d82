package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/events/eventstest"
)

func TestDescriptionsStoreOnceAndCheckOnRead(t *testing.T) {
	_, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img, err := random.Image(128, 3)
	if err != nil {
		t.Fatal(err)
	}
	d := eventstest.Describe(t, img, "r.example", "demo/x", "1")
	s, err := b.Descriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, d.Image); !errors.Is(err, events.ErrNoDescription) {
		t.Fatalf("Get before Put = %v, want ErrNoDescription", err)
	}
	for range 2 { // storing again is harmless
		if err := s.Put(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// A second process (no cache) reads it back from JetStream.
	s2, err := b.Descriptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Get(ctx, d.Image)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Layers) != 3 || got.Layers[2] != d.Layers[2] || string(got.Manifest) != string(d.Manifest) {
		t.Errorf("read back %+v", got.Layers)
	}
	// A reference whose digests do not match what is stored is refused.
	lie := d.Image
	lie.LayerCount = 2
	if _, err := s2.Get(ctx, lie); err == nil {
		t.Error("a reference with a wrong layer count was accepted")
	}
	// Someone on the bus overwrites the stored config: the reader notices.
	obs, err := b.JetStream().ObjectStore(ctx, bus.DescriptionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, d.Image.ConfigDigest, []byte(`{"config":{"Env":["EVIL=1"]}}`)); err != nil {
		t.Fatal(err)
	}
	s3, _ := b.Descriptions(ctx)
	if _, err := s3.Get(ctx, d.Image); err == nil {
		t.Error("a tampered config was accepted")
	}
}
