package thinpusher

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/registry"
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

// serveRegistry starts an in-memory registry, optionally behind wrap, and returns host:port.
func serveRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// testRegistryOptions: no retries with back-off, no docker config.
func testRegistryOptions() []registry.Option {
	return []registry.Option{
		registry.WithRetryBackoff(remote.Backoff{Steps: 1}),
		registry.WithKeychain(authn.NewMultiKeychain()),
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testJob(image string) events.Job {
	return events.Job{WishID: "wish-1", CorrelationID: "run-1", Image: image, CvmfsRepo: "unpacked.cern.ch"}
}

// expected is what the resolver must report for img.
type expected struct {
	digest, config string
	layers         []events.Layer
	raw            []byte
	cfg            *v1.ConfigFile
}

func expect(t *testing.T, img v1.Image) expected {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	e := expected{digest: d.String(), config: m.Config.Digest.String(), raw: raw, cfg: cf}
	for i, l := range m.Layers {
		e.layers = append(e.layers, events.Layer{Digest: l.Digest.String(), DiffID: cf.RootFS.DiffIDs[i].String(), MediaType: string(l.MediaType), Size: l.Size})
	}
	return e
}
