package flattener

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
)

// -g (--convert-again) builds the flat tree again even though it is there, restoring what was
// damaged, once per wish however many layer.ingested events of the wish arrive; a wish
// without -g keeps the tree as it is.
func TestConvertAgainRebuildsTheTree(t *testing.T) {
	x := newSetup(t, "demo/hello:2.0", "registry.example/demo/hello:2.0")
	x.ingestAll(t)
	if err := x.handle(t, 2, 1); err != nil {
		t.Fatal(err)
	}
	flat := x.st.FlatDir(x.img.ConfigDigest)
	message := filepath.Join(flat, "app/message.txt")
	stray := filepath.Join(flat, "stray")
	damage := func() {
		t.Helper()
		if err := os.Remove(message); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(stray, []byte("not in the image"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	damage()
	wantMessage := "Hello from flatbed demo 2.0!\n"

	// Without -g the tree is taken as converted.
	x.job = events.Job{WishID: "wish-2", CorrelationID: "run-2", Image: x.job.Image, CvmfsRepo: testRepo, SubmittedAt: time.Now()}
	x.b.Reset()
	if err := x.handle(t, 0, 1); err != nil {
		t.Fatal(err)
	}
	if exists(message) || !exists(stray) {
		t.Fatal("a wish without -g changed the tree")
	}

	// With -g: rebuilt and swapped in by the first event of the wish, kept by the others.
	time.Sleep(2 * ctimeLag) // the -g wish comes after the tree was last changed
	x.job = events.Job{WishID: "wish-3", CorrelationID: "run-3", Image: x.job.Image, CvmfsRepo: testRepo, SubmittedAt: time.Now(), ConvertAgain: true}
	x.b.Reset()
	before := ino(t, flat)
	var rebuilt uint64
	for i := range x.desc.Layers {
		if err := x.handle(t, i, 1); err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		if i == 0 {
			rebuilt = ino(t, flat)
			if rebuilt == before {
				t.Fatal("-g: the flat tree was not built again")
			}
		} else if got := ino(t, flat); got != rebuilt {
			t.Errorf("-g: layer %d's event built the tree again (inode %d -> %d): once per wish is enough", i, rebuilt, got)
		}
	}
	if b, err := os.ReadFile(message); err != nil || string(b) != wantMessage {
		t.Errorf("-g: app/message.txt = %q, %v; want %q restored", b, err, wantMessage)
	}
	if exists(stray) {
		t.Error("-g: a file that is not in the image stayed in the tree")
	}
	if target, err := os.Readlink(x.st.PublicPath(x.img.Name)); err != nil || filepath.Base(target) != filepath.Base(flat) {
		t.Errorf("public path -> %q, %v", target, err)
	}
	flattened := x.b.OfType(events.ImageFlattenedType)
	if len(flattened) == 0 {
		t.Fatalf("published %v, want %s", x.b.Types(), events.ImageFlattenedType)
	}
	if out := eventstest.Decode[events.ImageFlattened](t, flattened[0]); out.AlreadyPresent {
		t.Error("-g: the first image.flattened says AlreadyPresent: the notifier and convert would report no rebuild")
	}
	entries, err := os.ReadDir(filepath.Dir(flat))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only the flat tree (the old one removed, no temporaries)", filepath.Dir(flat), len(entries))
	}
}
