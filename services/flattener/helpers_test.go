package flattener

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/store"
)

// fakeBus records what a service publishes.
type fakeBus struct {
	mu   sync.Mutex
	envs []*events.Envelope
}

func (f *fakeBus) Publish(_ context.Context, env *events.Envelope) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.envs = append(f.envs, env)
	return nil
}

func (f *fakeBus) ofType(typ string) []*events.Envelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*events.Envelope
	for _, e := range f.envs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (f *fakeBus) types() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.envs {
		out = append(out, e.Type)
	}
	return out
}

// decode returns the data of env, checking the envelope is consistent.
func decode[T any](t *testing.T, env *events.Envelope) T {
	t.Helper()
	var v T
	if got, want := env.Event.Type(), events.CEType(env.Type); got != want {
		t.Errorf("CloudEvent type = %q, want %q", got, want)
	}
	if err := events.Decode(&env.Event, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// delivery is what the bus would hand the handler for data of type typ.
func delivery(t *testing.T, typ string, job events.Job, data any, attempt int) *bus.Delivery {
	t.Helper()
	env, err := events.New(typ, "flatbed/test", events.ID(typ, job.WishID, t.Name()), job, job.Image, data)
	if err != nil {
		t.Fatal(err)
	}
	return &bus.Delivery{Event: &env.Event, Type: typ, Attempt: attempt, MaxAttempts: 3}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testJob(image string) events.Job {
	return events.Job{WishID: "wish-1", CorrelationID: "run-1", Image: image, CvmfsRepo: "unpacked.cern.ch"}
}

// image is the events.Image the resolver reports for n under the store name name.
func image(t *testing.T, n imagegen.Named, name string) events.Image {
	t.Helper()
	d, err := n.Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := n.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := n.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := n.Image.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	img := events.Image{Name: name, Digest: d.String(), MediaType: string(m.MediaType), ConfigDigest: m.Config.Digest.String(), Manifest: raw,
		Config: events.Config{Env: cf.Config.Env, Cmd: cf.Config.Cmd, Entrypoint: cf.Config.Entrypoint, WorkingDir: cf.Config.WorkingDir}}
	for i, l := range m.Layers {
		img.Layers = append(img.Layers, events.Layer{Digest: l.Digest.String(), DiffID: cf.RootFS.DiffIDs[i].String(), MediaType: string(l.MediaType), Size: l.Size})
	}
	return img
}

// ingest puts layer i of n into st the way the ingester does (pkg/layer into a temporary
// directory, then store.Publish). The ingester service itself is another module: importing
// it here would make this module's go.mod depend on a sibling service.
func ingest(t *testing.T, st *store.Store, n imagegen.Named, i int) {
	t.Helper()
	layers, err := n.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[i].Digest()
	diff, _ := layers[i].DiffID()
	final := st.LayerDir(d.String())
	tmp, err := st.TempDir(final)
	if err != nil {
		t.Fatal(err)
	}
	fs := filepath.Join(tmp, "layerfs")
	if err := os.Mkdir(fs, 0o755); err != nil {
		t.Fatal(err)
	}
	rc, err := layers[i].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	meta, err := layer.Extract(context.Background(), rc, fs, layer.Want{Digest: d.String(), DiffID: diff.String()}, layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := layer.WriteMeta(filepath.Join(tmp, ".metadata"), meta); err != nil {
		t.Fatal(err)
	}
	if won, err := st.Publish(tmp, final); err != nil || !won {
		t.Fatalf("publishing layer %d: %v, %v", i, won, err)
	}
}
