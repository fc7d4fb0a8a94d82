package lazy

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/lazy"
	"flatbed.dev/pkg/registry/registrytest"
)

// memDedup is a lazy.Dedup in memory (the KV one needs a NATS server).
type memDedup struct {
	mu sync.Mutex
	m  map[string]lazy.Blob
}

func (d *memDedup) get(k string) (lazy.Blob, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.m[k]
	return b, ok, nil
}

func (d *memDedup) put(k string, b lazy.Blob) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[k] = b
	return nil
}

func (d *memDedup) Layer(_ context.Context, k lazy.LayerKey) (lazy.Blob, bool, error) {
	return d.get(layerKey(k))
}
func (d *memDedup) PutLayer(_ context.Context, k lazy.LayerKey, b lazy.Blob) error {
	return d.put(layerKey(k), b)
}
func (d *memDedup) Manifest(_ context.Context, k lazy.ManifestKey) (lazy.Blob, bool, error) {
	return d.get(manifestKey(k))
}
func (d *memDedup) PutManifest(_ context.Context, k lazy.ManifestKey, b lazy.Blob) error {
	return d.put(manifestKey(k), b)
}

func newService() (*Service, *eventstest.Bus) {
	b := &eventstest.Bus{}
	return &Service{Bus: b, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: registrytest.Options(), MaxAttempts: 3,
		Metrics: NewMetrics(prometheus.NewRegistry()), Dedup: &memDedup{m: map[string]lazy.Blob{}}, TempDir: ""}, b
}

func lazyJob(image, target, format string) events.Job {
	job := eventstest.Job(image)
	job.CvmfsRepo = ""
	job.Outputs = []string{events.OutputLazy}
	job.LazyImage, job.LazyFormat = target, format
	return job
}

// A wish for the lazy output converts the image, publishes image.lazified with the target's
// digest and the layer counts; the second image sharing its base converts one layer and
// reuses the others (counted in the metrics); a wish without the output is left alone.
func TestLazify(t *testing.T) {
	host := registrytest.Serve(t, nil)
	base, _ := random.Image(1024, 2)
	top, _ := random.Layer(1024, types.DockerLayer)
	app, _ := mutate.AppendLayers(base, top)
	s, b := newService()
	for i, im := range []struct {
		repo      string
		converted int
	}{{"base", 2}, {"app", 1}} {
		img := base
		if i == 1 {
			img = app
		}
		ref, _ := name.ParseReference(host+"/"+im.repo+":1", name.Insecure)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		resolved := eventstest.Describe(t, img, host, im.repo, "1").Image
		job := lazyJob("http://"+host+"/"+im.repo+":1", "http://"+host+"/"+im.repo+":1-esgz", lazy.Estargz)
		b.Reset()
		if err := s.Handle(context.Background(), eventstest.Delivery(t, events.ImageResolvedType, job, events.ImageResolved{Job: job, Image: resolved}, 1)); err != nil {
			t.Fatal(err)
		}
		envs := b.OfType(events.ImageLazifiedType)
		if len(envs) != 1 {
			t.Fatalf("published %v, want one image.lazified", b.Types())
		}
		out := eventstest.Decode[events.ImageLazified](t, envs[0])
		if out.Converted != im.converted || !strings.HasPrefix(out.Target, host+"/"+im.repo+":1-esgz@sha256:") {
			t.Errorf("%s: %+v", im.repo, out)
		}
		got, err := remote.Get(mustRef(t, host+"/"+im.repo+":1-esgz"))
		if err != nil || !strings.HasSuffix(out.Target, got.Digest.String()) {
			t.Errorf("%s: target %s, pushed %v (%v)", im.repo, out.Target, got, err)
		}
	}
	if c, r := testutil.ToFloat64(s.Metrics.Layers.WithLabelValues("converted")), testutil.ToFloat64(s.Metrics.Layers.WithLabelValues("reused")); c != 3 || r != 2 {
		t.Errorf("layers converted %v, reused %v; want 3 and 2", c, r)
	}
	b.Reset()
	other := eventstest.Job("http://" + host + "/base:1")
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.ImageResolvedType, other, events.ImageResolved{Job: other, Image: eventstest.Describe(t, base, host, "base", "1").Image}, 1)); err != nil || len(b.Envelopes()) > 0 {
		t.Errorf("a wish without the lazy output: %v, published %v", err, b.Types())
	}
}

// A format the stage does not make fails the wish at once, naming the formats it makes.
func TestUnknownFormat(t *testing.T) {
	host := registrytest.Serve(t, nil)
	img, _ := random.Image(512, 1)
	s, _ := newService()
	job := lazyJob("http://"+host+"/a:1", "http://"+host+"/a:obd", "overlaybd")
	err := s.Handle(context.Background(), eventstest.Delivery(t, events.ImageResolvedType, job, events.ImageResolved{Job: job, Image: eventstest.Describe(t, img, host, "a", "1").Image}, 1))
	if !events.IsPermanent(err) || !strings.Contains(err.Error(), "estargz, zstd-chunked") {
		t.Errorf("got %v, want a permanent error naming the formats", err)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
