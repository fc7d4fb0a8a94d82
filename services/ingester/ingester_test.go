package ingester

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
)

// counter counts the requests a registry answers, by kind.
type counter struct {
	blobs, manifests atomic.Int32
}

func (c *counter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet:
			c.blobs.Add(1)
		case strings.Contains(r.URL.Path, "/manifests/"):
			c.manifests.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

type fixture struct {
	host  string
	count *counter
	imgs  map[string]imagegen.Named // by Ref()
}

func newFixture(t *testing.T, wrap func(http.Handler) http.Handler) *fixture {
	t.Helper()
	f := &fixture{count: &counter{}, imgs: map[string]imagegen.Named{}}
	f.host = registrytest.Serve(t, func(h http.Handler) http.Handler {
		h = f.count.wrap(h)
		if wrap != nil {
			h = wrap(h)
		}
		return h
	})
	demo := imagegen.Demo()
	if err := imagegen.Push(context.Background(), f.host, demo); err != nil {
		t.Fatal(err)
	}
	for _, n := range demo {
		f.imgs[n.Ref()] = n
	}
	f.count.blobs.Store(0)
	f.count.manifests.Store(0)
	return f
}

// request is the layer.requested event for layer index of image ref.
func (f *fixture) request(t *testing.T, ref string, index int) (events.Job, events.LayerRequested) {
	t.Helper()
	n, ok := f.imgs[ref]
	if !ok {
		t.Fatalf("no image %s", ref)
	}
	job := eventstest.Job("http://" + f.host + "/" + ref)
	desc := resolved(t, f.host, n.Image, n.Name, n.Tag)
	return job, events.LayerRequested{Job: job, Image: desc.Image, Index: index, Layer: desc.Layers[index]}
}

func newService(t *testing.T, root string) (*Service, *eventstest.Bus) {
	b := &eventstest.Bus{}
	return &Service{StoreRoot: root, Bus: b, Log: quietLog(), Registry: registrytest.Options(),
		MaxAttempts: 3, Metrics: NewMetrics(prometheus.NewRegistry())}, b
}

func handle(t *testing.T, s *Service, in events.LayerRequested, attempt int) error {
	t.Helper()
	return s.Handle(context.Background(), eventstest.Delivery(t, events.LayerRequestedType, in.Job, in, attempt))
}

func readOrigin(t *testing.T, st *store.Store, digest string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(st.LayerMeta(digest), "origin.json"))
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		Origin []string `json:"origin"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatalf("origin.json: %v", err)
	}
	return o.Origin
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// noTemporaries fails if a .tmp- entry is left anywhere under .layers.
func noTemporaries(t *testing.T, st *store.Store) {
	t.Helper()
	_ = filepath.WalkDir(st.LayersDir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temporary entry left: %s", p)
		}
		return nil
	})
}

func onlyIngested(t *testing.T, b *eventstest.Bus) events.LayerIngested {
	t.Helper()
	if got := b.Types(); !slices.Equal(got, []string{events.LayerIngestedType}) {
		t.Fatalf("published %v, want one %s", got, events.LayerIngestedType)
	}
	return eventstest.Decode[events.LayerIngested](t, b.Envelopes()[0])
}

func TestIngestLayer(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		ref   string
		index int
		file  string // a file the layer holds
		want  string
	}{
		{"demo/hello:1.0", 0, "etc/motd", "Welcome to the flatbed demo image.\n"},
		{"demo/hello:1.0", 1, "app/message.txt", "Hello from flatbed demo 1.0!\n"},
		{"demo/hello:2.0", 2, "app/CHANGES", "2.0: a new message\n"},
		{"demo/tools:latest", 1, "usr/local/bin/tool-a", "#!/bin/sh\necho tool a\n"},
	} {
		t.Run(tc.ref+"/"+tc.file, func(t *testing.T) {
			s, b := newService(t, t.TempDir())
			job, in := f.request(t, tc.ref, tc.index)
			l := in.Layer
			if err := handle(t, s, in, 1); err != nil {
				t.Fatal(err)
			}
			st := store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))
			hex := store.Hex(l.Digest)
			layerfs := filepath.Join(st.Root, ".layers", hex[:2], hex, "layerfs")
			got, err := os.ReadFile(filepath.Join(layerfs, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("%s = %q, want %q", tc.file, got, tc.want)
			}
			m, err := layer.ReadMeta(filepath.Join(st.Root, ".layers", hex[:2], hex, ".metadata"))
			if err != nil {
				t.Fatal(err)
			}
			if m.Digest != l.Digest || m.DiffID != l.DiffID || m.Size != l.Size {
				t.Errorf("layer.json = digest %s diff %s size %d, want %s %s %d", m.Digest, m.DiffID, m.Size, l.Digest, l.DiffID, l.Size)
			}
			if got, want := readOrigin(t, st, l.Digest), []string{in.Image.ConfigDigest}; !slices.Equal(got, want) {
				t.Errorf("origin = %v, want %v", got, want)
			}
			out := onlyIngested(t, b)
			if out.AlreadyPresent {
				t.Error("AlreadyPresent = true for a fresh store")
			}
			if got, want := out.Path, ".layers/"+hex[:2]+"/"+hex+"/layerfs"; got != want {
				t.Errorf("Path = %q, want %q", got, want)
			}
			if out.Bytes != l.Size {
				t.Errorf("Bytes = %d, want the compressed size %d", out.Bytes, l.Size)
			}
			if out.Layer != l {
				t.Errorf("Layer = %+v, want %+v", out.Layer, l)
			}
			if out.Index != tc.index || out.Image.ConfigDigest != in.Image.ConfigDigest || !reflect.DeepEqual(out.Job, job) {
				t.Errorf("LayerIngested = index %d config %s job %+v; want %d %s %+v", out.Index, out.Image.ConfigDigest, out.Job, tc.index, in.Image.ConfigDigest, job)
			}
			noTemporaries(t, st)
		})
	}
}

func TestIngestAlreadyPresent(t *testing.T) {
	f := newFixture(t, nil)
	s, b := newService(t, t.TempDir())
	job, in1 := f.request(t, "demo/hello:1.0", 0)
	_, in2 := f.request(t, "demo/hello:2.0", 0) // same base layer, another config
	l := in1.Layer
	if in2.Layer.Digest != l.Digest || in2.Image.ConfigDigest == in1.Image.ConfigDigest {
		t.Fatal("demo images no longer share their base layer: fix the test")
	}
	st := store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))

	if err := handle(t, s, in1, 1); err != nil {
		t.Fatal(err)
	}
	if got := f.count.blobs.Load(); got != 1 {
		t.Errorf("first ingest: %d blob GETs, want 1", got)
	}
	layerfs := st.LayerFS(l.Digest)
	before := ino(t, layerfs)
	motd := ino(t, filepath.Join(layerfs, "etc/motd"))

	steps := []struct {
		name       string
		in         events.LayerRequested
		wantOrigin []string
	}{
		{"same image again", in1, []string{in1.Image.ConfigDigest}},
		{"other image sharing the layer", in2, []string{in1.Image.ConfigDigest, in2.Image.ConfigDigest}},
		{"other image again", in2, []string{in1.Image.ConfigDigest, in2.Image.ConfigDigest}},
		{"first image once more", in1, []string{in1.Image.ConfigDigest, in2.Image.ConfigDigest}},
	}
	for _, step := range steps {
		f.count.blobs.Store(0)
		f.count.manifests.Store(0)
		b.Reset()
		if err := handle(t, s, step.in, 1); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := f.count.blobs.Load() + f.count.manifests.Load(); got != 0 {
			t.Errorf("%s: %d registry requests, want none", step.name, got)
		}
		out := onlyIngested(t, b)
		if !out.AlreadyPresent || out.Bytes != 0 {
			t.Errorf("%s: AlreadyPresent %v Bytes %d, want true and 0", step.name, out.AlreadyPresent, out.Bytes)
		}
		// Each config exactly once; the order is not part of the contract.
		got := readOrigin(t, st, l.Digest)
		if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(step.wantOrigin))) {
			t.Errorf("%s: origin = %v, want %v (each once, any order)", step.name, got, step.wantOrigin)
		}
		if ino(t, layerfs) != before || ino(t, filepath.Join(layerfs, "etc/motd")) != motd {
			t.Errorf("%s: layerfs was replaced", step.name)
		}
	}
}

// Two ingesters racing for one layer: both succeed, one copy is kept, the other discarded.
func TestIngestRace(t *testing.T) {
	f := newFixture(t, nil)
	root := t.TempDir()
	job, in := f.request(t, "demo/hello:1.0", 0)
	const n = 4
	var wg sync.WaitGroup
	buses := make([]*eventstest.Bus, n)
	errs := make([]error, n)
	for i := range n {
		s, b := newService(t, root)
		buses[i] = b
		wg.Go(func() { errs[i] = handle(t, s, in, 1) })
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("ingester %d: %v", i, errs[i])
			continue
		}
		if !eventstest.Decode[events.LayerIngested](t, buses[i].OfType(events.LayerIngestedType)[0]).AlreadyPresent {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d ingesters report a fresh layer, want exactly 1", fresh)
	}
	st := store.New(filepath.Join(root, job.CvmfsRepo))
	if !st.HasLayer(in.Layer.Digest) {
		t.Error("layer missing after the race")
	}
	if got, want := readOrigin(t, st, in.Layer.Digest), []string{in.Image.ConfigDigest}; !slices.Equal(got, want) {
		t.Errorf("origin = %v, want %v", got, want)
	}
	noTemporaries(t, st)
}

// corrupt serves the blob digest through change.
func corrupt(digest string, change func([]byte) []byte) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+digest) {
				h.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			body := change(rec.Body.Bytes())
			for k, v := range rec.Header() {
				if k != "Content-Length" {
					w.Header()[k] = v
				}
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
		})
	}
}

func TestIngestCorruptBlob(t *testing.T) {
	base := imagegen.Demo()[0] // demo/hello:1.0
	layers, err := base.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[1].Digest()
	digest := d.String()
	other, _ := layers[0].Compressed()
	var otherBlob bytes.Buffer
	_, _ = otherBlob.ReadFrom(other)

	changes := []struct {
		name   string
		change func([]byte) []byte
	}{
		{"one byte flipped", func(b []byte) []byte {
			c := bytes.Clone(b)
			c[len(c)/2] ^= 0xff
			return c
		}},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"another valid blob", func([]byte) []byte { return otherBlob.Bytes() }},
		{"trailing garbage", func(b []byte) []byte { return append(bytes.Clone(b), "garbage"...) }},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, corrupt(digest, c.change))
			job, in := f.request(t, "demo/hello:1.0", 1)
			if in.Layer.Digest != digest {
				t.Fatal("fixture mismatch")
			}
			s, b := newService(t, t.TempDir())
			s.Registry = append(s.Registry, registry.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 3}))
			st := store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))
			// Fetched again within the delivery, up to the retry limit; then the wish fails
			// at once, naming the layer, with no redelivery.
			if err := handle(t, s, in, 1); err != nil {
				t.Fatalf("Handle returned %v, want nil and image.failed", err)
			}
			if got := f.count.blobs.Load(); got != 3 {
				t.Errorf("%d blob GETs, want 3 (the retry limit)", got)
			}
			if got := b.Types(); !slices.Equal(got, []string{events.ImageFailedType}) {
				t.Fatalf("published %v, want only %s", got, events.ImageFailedType)
			}
			fe := eventstest.Decode[events.ImageFailed](t, b.Envelopes()[0])
			if fe.Stage != Name || fe.Layer != digest || fe.Image == nil || fe.Image.ConfigDigest != in.Image.ConfigDigest {
				t.Errorf("ImageFailed = stage %q layer %q image %v; want %s, %s, the image", fe.Stage, fe.Layer, fe.Image, Name, digest)
			}
			if !strings.Contains(fe.Error, digest) || !strings.Contains(fe.Error, "gave up after 3 failed tries") {
				t.Errorf("Error %q does not name the layer and the tries", fe.Error)
			}
			if st.HasLayer(digest) {
				t.Error("corrupt layer published")
			}
			if _, err := os.Lstat(st.LayerDir(digest)); !os.IsNotExist(err) {
				t.Errorf("layer dir exists under its final name (%v)", err)
			}
			noTemporaries(t, st)
		})
	}
}

// A blob corrupted on the way once is fetched again within the same delivery.
func TestIngestCorruptOnce(t *testing.T) {
	base := imagegen.Demo()[0]
	layers, _ := base.Image.Layers()
	d, _ := layers[1].Digest()
	var served atomic.Int32
	f := newFixture(t, corrupt(d.String(), func(b []byte) []byte {
		if served.Add(1) > 1 {
			return b
		}
		c := bytes.Clone(b)
		c[len(c)/2] ^= 0xff
		return c
	}))
	_, in := f.request(t, "demo/hello:1.0", 1)
	s, b := newService(t, t.TempDir())
	s.Registry = append(s.Registry, registry.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 3}))
	if err := handle(t, s, in, 1); err != nil {
		t.Fatal(err)
	}
	if got := onlyIngested(t, b); got.AlreadyPresent || f.count.blobs.Load() != 2 {
		t.Errorf("ingested %+v after %d blob GETs, want it unpacked after 2", got, f.count.blobs.Load())
	}
}

// An index outside the image is an invalid event: Decode refuses it before anything is
// fetched, and the handler returns a permanent error, which the bus turns into image.failed.
func TestIngestIndexOutOfRange(t *testing.T) {
	f := newFixture(t, nil)
	for _, index := range []int{-1, 2} {
		s, b := newService(t, t.TempDir())
		_, in := f.request(t, "demo/hello:1.0", 0)
		in.Index = index
		err := handle(t, s, in, 1)
		if !events.IsPermanent(err) || !errors.Is(err, events.ErrInvalid) {
			t.Errorf("index %d: Handle returned %v, want a permanent invalid-event error", index, err)
		}
		if got := b.Types(); len(got) != 0 {
			t.Errorf("index %d: published %v, want nothing (the bus reports the failure)", index, got)
		}
		if got := f.count.blobs.Load(); got != 0 {
			t.Errorf("index %d: %d blob GETs", index, got)
		}
	}
}

// The store is keyed by the compressed digest: a layer already there whose recorded diff_id
// is not the one the image claims means the image's config does not match its layers. The
// wish fails at once, naming both diff ids, without a retry.
func TestIngestPresentLayerOtherDiffID(t *testing.T) {
	f := newFixture(t, nil)
	other := "sha256:" + strings.Repeat("b", 64)
	for _, tc := range []struct {
		name   string
		change func(st *store.Store, in *events.LayerRequested)
	}{
		{"the image claims another diff_id", func(_ *store.Store, in *events.LayerRequested) { in.Layer.DiffID = other }},
		{"the store recorded another diff_id", func(st *store.Store, in *events.LayerRequested) {
			m, err := layer.ReadMeta(st.LayerMeta(in.Layer.Digest))
			if err != nil {
				t.Fatal(err)
			}
			m.DiffID = other
			if err := layer.WriteMeta(st.LayerMeta(in.Layer.Digest), m); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, b := newService(t, t.TempDir())
			job, in := f.request(t, "demo/hello:1.0", 0)
			if err := handle(t, s, in, 1); err != nil {
				t.Fatal(err)
			}
			st := store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))
			before := ino(t, st.LayerFS(in.Layer.Digest))
			tc.change(st, &in)
			stored, err := layer.ReadMeta(st.LayerMeta(in.Layer.Digest))
			if err != nil {
				t.Fatal(err)
			}
			if stored.DiffID == in.Layer.DiffID {
				t.Fatal("the diff ids still agree: fix the test")
			}
			b.Reset()
			f.count.blobs.Store(0)
			if err := handle(t, s, in, 1); err != nil {
				t.Fatalf("Handle returned %v; a mismatched diff_id must fail at once, not be retried", err)
			}
			if got := b.Types(); !slices.Equal(got, []string{events.ImageFailedType}) {
				t.Fatalf("published %v, want only %s", got, events.ImageFailedType)
			}
			fe := eventstest.Decode[events.ImageFailed](t, b.Envelopes()[0])
			if fe.Stage != Name || fe.Layer != in.Layer.Digest || fe.Image == nil || *fe.Image != in.Image {
				t.Errorf("ImageFailed = stage %q layer %q image %v; want %s, %s, the image", fe.Stage, fe.Layer, fe.Image, Name, in.Layer.Digest)
			}
			for _, d := range []string{in.Layer.DiffID, stored.DiffID} {
				if !strings.Contains(fe.Error, d) {
					t.Errorf("Error %q does not name diff id %s", fe.Error, d)
				}
			}
			if got := f.count.blobs.Load(); got != 0 {
				t.Errorf("%d blob GETs; the stored layer must not be fetched again", got)
			}
			if !st.HasLayer(in.Layer.Digest) || ino(t, st.LayerFS(in.Layer.Digest)) != before {
				t.Error("the stored layer was removed or replaced")
			}
		})
	}
}

// A registry that sends more than the descriptor's size must not be read on and on: the
// ingester knows the size (LayerRequested carries it) and pkg/layer stops after Size+1 bytes
// when told it.
func TestIngestOversizedBlobIsCutOff(t *testing.T) {
	const extra = 4 << 20
	base := imagegen.Demo()[0]
	layers, _ := base.Image.Layers()
	d, _ := layers[1].Digest()
	digest := d.String()
	// Valid empty gzip members: a gzip reader in multistream mode reads on through all of them.
	var member bytes.Buffer
	zw := gzip.NewWriter(&member)
	_ = zw.Close()
	padding := bytes.Repeat(member.Bytes(), extra/member.Len())
	f := newFixture(t, corrupt(digest, func(b []byte) []byte { return append(bytes.Clone(b), padding...) }))
	_, in := f.request(t, "demo/hello:1.0", 1)
	s, b := newService(t, t.TempDir())
	if err := handle(t, s, in, 1); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if got := b.Types(); !slices.Equal(got, []string{events.ImageFailedType}) {
		t.Fatalf("published %v, want only %s", got, events.ImageFailedType)
	}
	size := in.Layer.Size
	if got := s.Metrics.fetched.Load(); got > size+64<<10 {
		t.Errorf("an oversized blob was read past its declared size (%d bytes read for a %d byte layer); an endless one would never stop", got, size)
	}
}
