package flattener

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/cvmfs"
)

// cvmfs_server cannot be installed here. standIn is one that records every call it gets in
// log ("call <args>"); the flattener's events go to the same log ("event <type>") through
// loggedBus, so the log says what a downstream consumer could have seen when.
func standIn(t *testing.T) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	bin, log = filepath.Join(dir, "cvmfs_server"), filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"call $*\" >> '" + log + "'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

// loggedBus is the test bus, which also appends "event <type>" to log when it publishes.
type loggedBus struct {
	*eventstest.Bus
	log string
	mu  sync.Mutex
}

func (b *loggedBus) Publish(ctx context.Context, env *events.Envelope) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, err := os.OpenFile(b.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString("event " + env.Type + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return b.Bus.Publish(ctx, env)
}

// onCVMFS makes s publish testRepo, whose mount is root, through the stand-in, and log its
// events next to the stand-in's calls.
func onCVMFS(t *testing.T, s *Service, b *eventstest.Bus, root string) (log string) {
	t.Helper()
	bin, log := standIn(t)
	s.CVMFS = func(repo string) *cvmfs.Publisher {
		if repo != testRepo {
			return nil
		}
		return &cvmfs.Publisher{Repo: testRepo, Bin: bin, Root: root}
	}
	s.Bus = &loggedBus{Bus: b, log: log}
	return log
}

// logLines is the log, with the repository named REPO; reset empties it.
func logLines(t *testing.T, log string, reset bool) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if reset {
		os.Remove(log)
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), testRepo, "REPO"))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// A multi-arch image is announced (image.flattened) only once the transaction that switched
// its public path over is published: a consumer hearing "done" finds the files on every
// CernVM-FS client. Each platform is one transaction, and the image's event follows the last
// one's publish.
func TestMultiArchFlattenedAfterPublish(t *testing.T) {
	m := newMultiSetup(t)
	log := onCVMFS(t, m.s, m.b, m.st.Root)
	if err := m.convert(t, "linux/amd64", 1); err != nil {
		t.Fatal(err)
	}
	if err := m.convert(t, "linux/arm64/v8", 1); err != nil {
		t.Fatal(err)
	}
	got := logLines(t, log, false)
	want := []string{
		"call transaction REPO", "call publish REPO", // linux/amd64, its image not complete
		"call transaction REPO", "call publish REPO", "event " + events.ImageFlattenedType, // linux/arm64/v8 completes it
	}
	// The platform's other layer.ingested events find nothing to change: the same event again.
	for len(want) < len(got) && got[len(want)] == want[len(want)-1] {
		want = append(want, want[len(want)-1])
	}
	if !slices.Equal(got, want) {
		t.Errorf("a multi-arch conversion on CernVM-FS ran\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if !exists(m.st.PublicPath(multiName)) {
		t.Error("the public path was not made")
	}
}

// An image with nothing to change opens no cvmfs_server transaction: the second layer.ingested
// of an image whose layers were all there, a redelivered one, a platform of a complete
// multi-arch image delivered again. Each still answers with image.flattened (the wish
// waits for it; JetStream drops the repeats by id). Something missing again (the public path)
// is one transaction.
func TestNothingToChangeOpensNoTransaction(t *testing.T) {
	x := newSetup(t, "demo/hello:2.0", "registry.example/demo/hello:2.0")
	log := onCVMFS(t, x.s, x.b, x.st.Root)
	x.ingestAll(t)
	for i := range x.desc.Layers {
		if err := x.handle(t, i, 1); err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
	}
	flat := "event " + events.ImageFlattenedType
	want := []string{"call transaction REPO", "call publish REPO"}
	for range x.desc.Layers {
		want = append(want, flat)
	}
	if got := logLines(t, log, true); !slices.Equal(got, want) {
		t.Errorf("%d layer.ingested of one image, all its layers there, ran\n  %s\nwant\n  %s", len(x.desc.Layers), strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if err := x.handle(t, len(x.desc.Layers)-1, 2); err != nil {
		t.Fatal(err)
	}
	if got := logLines(t, log, true); !slices.Equal(got, []string{flat}) {
		t.Errorf("a redelivered layer.ingested of a converted image ran %q, want only %q", got, flat)
	}
	for i, e := range x.b.OfType(events.ImageFlattenedType) {
		out := eventstest.Decode[events.ImageFlattened](t, e)
		if err := out.Validate(); err != nil {
			t.Error(err)
		}
		if out.AlreadyPresent != (i > 0) {
			t.Errorf("image.flattened %d says already present %v", i, out.AlreadyPresent)
		}
	}
	if err := os.Remove(x.st.PublicPath(x.img.Name)); err != nil {
		t.Fatal(err)
	}
	if err := x.handle(t, 0, 1); err != nil {
		t.Fatal(err)
	}
	if got, want := logLines(t, log, true), []string{"call transaction REPO", "call publish REPO", flat}; !slices.Equal(got, want) {
		t.Errorf("with the public path gone, a layer.ingested ran %q, want %q", got, want)
	}
	if !exists(x.st.PublicPath(x.img.Name)) {
		t.Error("the public path was not linked again")
	}

	m := newMultiSetup(t)
	log = onCVMFS(t, m.s, m.b, m.st.Root)
	for _, p := range []string{"linux/amd64", "linux/arm64/v8"} {
		if err := m.convert(t, p, 1); err != nil {
			t.Fatal(err)
		}
	}
	logLines(t, log, true)
	for _, p := range []string{"linux/amd64", "linux/arm64/v8"} {
		if err := m.convert(t, p, 2); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range logLines(t, log, true) {
		if l != flat {
			t.Errorf("delivering a complete multi-arch image's layers again ran %q", l)
		}
	}
}
