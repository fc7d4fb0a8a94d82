package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
)

func newService(t testing.TB) (*Service, *eventstest.Bus) {
	b := &eventstest.Bus{}
	return &Service{StoreRoot: t.TempDir(), Bus: b, Log: quietLog(), Registry: registrytest.Options(),
		Descriptions: &descriptions{bus: b}}, b
}

// descriptions is the in-memory description store, noting how many events had been
// published when each description was stored.
type descriptions struct {
	eventstest.Descriptions
	bus  *eventstest.Bus
	mu   sync.Mutex
	puts []int // events published before each Put
}

func (d *descriptions) Put(ctx context.Context, desc *events.Description) error {
	d.mu.Lock()
	d.puts = append(d.puts, len(d.bus.Envelopes()))
	d.mu.Unlock()
	return d.Descriptions.Put(ctx, desc)
}

func descsOf(s *Service) *descriptions { return s.Descriptions.(*descriptions) }

func demo(t testing.TB, ref string) imagegen.Named {
	t.Helper()
	for _, n := range imagegen.Demo() {
		if n.Ref() == ref {
			return n
		}
	}
	t.Fatalf("no demo image %s", ref)
	return imagegen.Named{}
}

func pushDemo(t testing.TB, host string) {
	t.Helper()
	if err := imagegen.Push(context.Background(), host, imagegen.Demo()); err != nil {
		t.Fatal(err)
	}
}

// checkResolved checks the image.resolved and layer.requested events of one wish, and the
// description the resolver stored for the later stages before it published them.
func checkResolved(t *testing.T, s *Service, b *eventstest.Bus, job events.Job, wantName string, want *events.Description) events.Image {
	t.Helper()
	res := b.OfType(events.ImageResolvedType)
	if len(res) != 1 {
		t.Fatalf("published %v, want one %s", b.Types(), events.ImageResolvedType)
	}
	r := eventstest.Decode[events.ImageResolved](t, res[0])
	img := r.Image
	if r.AlreadyConverted {
		t.Error("AlreadyConverted = true for an empty store")
	}
	if !reflect.DeepEqual(r.Job, job) {
		t.Errorf("Job = %+v, want %+v", r.Job, job)
	}
	for _, c := range []struct{ what, got, want string }{
		{"Name", img.Name, wantName},
		{"Digest", img.Digest, want.Image.Digest},
		{"ConfigDigest", img.ConfigDigest, want.Image.ConfigDigest},
		{"MediaType", img.MediaType, want.Image.MediaType},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if img.LayerCount != len(want.Layers) {
		t.Errorf("LayerCount = %d, want %d", img.LayerCount, len(want.Layers))
	}
	if err := img.Validate(); err != nil {
		t.Errorf("the published image does not validate: %v", err)
	}
	// What the image holds is stored, before any event names it.
	ds := descsOf(s)
	if len(ds.puts) != 1 || ds.puts[0] != 0 {
		t.Errorf("description stored %d times, after %v events; want once, before any event", len(ds.puts), ds.puts)
	}
	got, err := ds.Get(context.Background(), img)
	if err != nil {
		t.Fatalf("no description stored for the resolved image: %v", err)
	}
	if !slices.Equal(got.Layers, want.Layers) {
		t.Errorf("Layers = %+v\nwant %+v", got.Layers, want.Layers)
	}
	if string(got.Manifest) != string(want.Manifest) {
		t.Errorf("Manifest = %s\nwant %s", got.Manifest, want.Manifest)
	}
	if string(got.RawConfig) != string(want.RawConfig) {
		t.Errorf("RawConfig = %s\nwant %s", got.RawConfig, want.RawConfig)
	}
	if !slices.Equal(got.Config.Env, want.Config.Env) || !slices.Equal(got.Config.Cmd, want.Config.Cmd) {
		t.Errorf("Config = %+v, want Env %v Cmd %v", got.Config, want.Config.Env, want.Config.Cmd)
	}
	reqs := b.OfType(events.LayerRequestedType)
	if got, want := len(reqs), len(want.Layers); got != want {
		t.Fatalf("%d layer.requested events, want %d", got, want)
	}
	ids := map[string]bool{}
	for i, env := range reqs {
		lr := eventstest.Decode[events.LayerRequested](t, env)
		if lr.Index != i {
			t.Errorf("request %d has Index %d", i, lr.Index)
		}
		if lr.Image != img || lr.Layer != want.Layers[i] {
			t.Errorf("request %d: image %+v layer %+v, want %+v %+v", i, lr.Image, lr.Layer, img, want.Layers[i])
		}
		if !reflect.DeepEqual(lr.Job, job) {
			t.Errorf("request %d: Job = %+v, want %+v", i, lr.Job, job)
		}
		if err := lr.Validate(); err != nil {
			t.Errorf("request %d does not validate: %v", i, err)
		}
		if ids[env.ID] {
			t.Errorf("request %d reuses event id %s", i, env.ID)
		}
		ids[env.ID] = true
	}
	return img
}

func TestResolveTag(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	for _, ref := range []string{"demo/hello:1.0", "demo/hello:2.0", "demo/tools:latest"} {
		t.Run(ref, func(t *testing.T) {
			s, b := newService(t)
			job := eventstest.Job("http://" + host + "/" + ref)
			if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
				t.Fatal(err)
			}
			repo, tag, _ := strings.Cut(ref, ":")
			img := checkResolved(t, s, b, job, host+"/"+ref, eventstest.Describe(t, demo(t, ref).Image, host, repo, tag))
			if img.Registry != host || img.Tag != strings.SplitN(ref, ":", 2)[1] {
				t.Errorf("Registry %q Tag %q, want %q and the tag of %s", img.Registry, img.Tag, host, ref)
			}
			if len(b.OfType(events.ImageFailedType)) != 0 {
				t.Errorf("image.failed published: %v", b.Types())
			}
		})
	}
}

func TestResolveRedeliverySameIDs(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	s, b := newService(t)
	job := eventstest.Job("http://" + host + "/demo/hello:2.0")
	for attempt := 1; attempt <= 2; attempt++ {
		if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, attempt)); err != nil {
			t.Fatal(err)
		}
	}
	// A redelivery must publish the same ids, so JetStream's duplicate window drops them.
	envs := b.Envelopes()
	if len(envs) != 8 {
		t.Fatalf("published %d events, want 2x4", len(envs))
	}
	for i := 0; i < 4; i++ {
		if envs[i].ID != envs[i+4].ID {
			t.Errorf("event %d: id %s on the first run, %s on the second", i, envs[i].ID, envs[i+4].ID)
		}
	}
}

// platformImage is a random one-layer image whose config names platform p.
func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func pushIndex(t *testing.T, host, repo string, platforms ...v1.Platform) map[string]v1.Image {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	imgs := map[string]v1.Image{}
	for _, p := range platforms {
		img := platformImage(t, p)
		imgs[p.String()] = img
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	return imgs
}

func TestResolveIndex(t *testing.T) {
	host := registrytest.Serve(t, nil)
	imgs := pushIndex(t, host, "multi/arch:1",
		v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
		v1.Platform{OS: "linux", Architecture: "amd64"},
		v1.Platform{OS: "windows", Architecture: "amd64"},
	)
	s, b := newService(t)
	job := eventstest.Job("http://" + host + "/multi/arch:1")
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
		t.Fatal(err)
	}
	img := checkResolved(t, s, b, job, host+"/multi/arch:1", eventstest.Describe(t, imgs["linux/amd64"], host, "multi/arch", "1"))
	if got, want := img.Platform, "linux/amd64"; got != want {
		t.Errorf("Platform = %q, want %q", got, want)
	}
}

func TestResolveIndexWithoutAmd64(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushIndex(t, host, "arm/only:1", v1.Platform{OS: "linux", Architecture: "arm64"})
	s, b := newService(t)
	checkRefused(t, s, b, eventstest.Job("http://"+host+"/arm/only:1"), "arm/only:1")
}

func TestResolveFailures(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	tests := []struct {
		name    string
		image   string
		wantMsg []string // substrings of the error
	}{
		{"wildcard tag", "http://" + host + "/demo/hello:1.*", []string{"demo/hello:1.*", "a wish names one tag", "expand it first"}},
		{"missing tag", "http://" + host + "/demo/hello:9.9", []string{"demo/hello:9.9", "registry answered 404"}},
		{"missing repository", "http://" + host + "/demo/nothing:1.0", []string{"demo/nothing:1.0"}},
		{"unparsable image", "http://" + host + "/UPPER/case:1", []string{"UPPER/case"}},
		{"unknown registry", "http://flatbed-test.invalid/demo/hello:1.0", []string{"no such host flatbed-test.invalid: check the registry name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := newService(t)
			checkRefused(t, s, b, eventstest.Job(tt.image), tt.wantMsg...)
		})
	}
}

// A busy registry is retried within one delivery, with back-off, up to the registry timeout;
// then the wish fails at once with the last answer and the bound, not after more deliveries.
func TestResolveRetriesRegistryFaults(t *testing.T) {
	var busy, calls atomic.Int32
	host := registrytest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet {
				calls.Add(1)
				if busy.Add(-1) >= 0 {
					http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"later"}]}`, http.StatusServiceUnavailable)
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	pushDemo(t, host)
	job := eventstest.Job("http://" + host + "/demo/hello:1.0")
	retrying := func(s *Service) {
		s.Registry = append(s.Registry, registry.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Cap: 50 * time.Millisecond}),
			registry.WithTimeout(500*time.Millisecond))
	}

	busy.Store(2)
	s, b := newService(t)
	retrying(s)
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
		t.Fatalf("two 503s: Handle returned %v, want them retried within the delivery", err)
	}
	if len(b.OfType(events.ImageResolvedType)) != 1 || calls.Load() != 3 {
		t.Errorf("published %v after %d manifest GETs; want image.resolved after 3", b.Types(), calls.Load())
	}

	busy.Store(1 << 30)
	s, b = newService(t)
	retrying(s)
	start := time.Now()
	err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1))
	took := time.Since(start)
	if !events.IsPermanent(err) {
		t.Fatalf("503 for ever: Handle returned %v, want a permanent error once the registry timeout ran out", err)
	}
	for _, m := range []string{"fetching the manifest of", "registry answered 503 Service Unavailable", "the registry timeout (--registry-timeout 500ms) ran out"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not contain %q", err, m)
		}
	}
	if len(b.Envelopes()) != 0 || took < 500*time.Millisecond || took > 3*time.Second {
		t.Errorf("published %v, gave up after %s; want nothing published, after about 500ms", b.Types(), took)
	}
}

// A manifest naming a config the registry no longer has (the tag moved while it was read)
// is read again within the delivery, and the wish resolves.
func TestResolveRereadsAChangedImage(t *testing.T) {
	var manifests, configs atomic.Int32
	host := registrytest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
				manifests.Add(1)
			}
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && configs.Add(1) == 1 {
				http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"gone"}]}`, http.StatusNotFound)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	pushDemo(t, host)
	manifests.Store(0)
	configs.Store(0)
	s, b := newService(t)
	s.Registry = append(s.Registry, registry.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 3}))
	job := eventstest.Job("http://" + host + "/demo/hello:1.0")
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
		t.Fatal(err)
	}
	if len(b.OfType(events.ImageResolvedType)) != 1 || manifests.Load() != 2 {
		t.Errorf("published %v after %d manifest GETs; want image.resolved after reading it again", b.Types(), manifests.Load())
	}
}

// storeState is what the store holds of an image before the wish.
type storeState struct {
	manifest []byte // nil: no manifest.json
	flat     bool
	public   bool
	// lostLayer: the layer directory of the manifest's last layer is not there (every
	// other layer the manifest lists is).
	lostLayer bool
	// dangling: the public path links to a flat tree that is not there.
	dangling bool
}

// writeStore lays the store out as the flattener leaves it.
func writeStore(t testing.TB, st *store.Store, name, config string, s storeState) {
	t.Helper()
	if s.manifest != nil {
		if _, err := store.WriteFileAtomic(st.ManifestPath(name), s.manifest, 0o644); err != nil {
			t.Fatal(err)
		}
		var m struct{ Layers []struct{ Digest string } }
		_ = json.Unmarshal(s.manifest, &m)
		for i, l := range m.Layers {
			if s.lostLayer && i == len(m.Layers)-1 {
				break
			}
			if err := os.MkdirAll(st.LayerFS(l.Digest), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.flat {
		if err := os.MkdirAll(st.FlatDir(config), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if s.public {
		rel, _ := filepath.Rel(st.Root, st.FlatDir(config))
		target := strings.Repeat("../", strings.Count(name, "/")) + rel
		if s.dangling {
			target += "-gone"
		}
		if _, err := store.SymlinkAtomic(target, st.PublicPath(name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResolveAlreadyConverted(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	want := eventstest.Describe(t, demo(t, "demo/hello:1.0").Image, host, "demo/hello", "1.0")
	other := eventstest.Describe(t, demo(t, "demo/hello:2.0").Image, host, "demo/hello", "2.0")
	tests := []struct {
		name         string
		state        storeState
		convertAgain bool
		wantDone     bool
	}{
		{"converted", storeState{manifest: want.Manifest, flat: true, public: true}, false, true},
		{"convert again", storeState{manifest: want.Manifest, flat: true, public: true}, true, false},
		{"manifest names another config", storeState{manifest: other.Manifest, flat: true, public: true}, false, false},
		{"no manifest", storeState{flat: true, public: true}, false, false},
		{"no flat tree", storeState{manifest: want.Manifest, public: true}, false, false},
		{"no public path", storeState{manifest: want.Manifest, flat: true}, false, false},
		{"a layer directory lost", storeState{manifest: want.Manifest, flat: true, public: true, lostLayer: true}, false, false},
		{"public path dangling", storeState{manifest: want.Manifest, flat: true, public: true, dangling: true}, false, false},
		{"unreadable manifest", storeState{manifest: []byte("{"), flat: true, public: true}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := newService(t)
			job := eventstest.Job("http://" + host + "/demo/hello:1.0")
			job.ConvertAgain = tt.convertAgain
			name := host + "/demo/hello:1.0"
			writeStore(t, store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo)), name, want.Image.ConfigDigest, tt.state)
			if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
				t.Fatal(err)
			}
			res := b.OfType(events.ImageResolvedType)
			if len(res) != 1 {
				t.Fatalf("published %v, want one %s", b.Types(), events.ImageResolvedType)
			}
			r := eventstest.Decode[events.ImageResolved](t, res[0])
			if r.AlreadyConverted != tt.wantDone {
				t.Errorf("AlreadyConverted = %v, want %v", r.AlreadyConverted, tt.wantDone)
			}
			if r.Image.ConfigDigest != want.Image.ConfigDigest {
				t.Errorf("ConfigDigest = %s, want %s", r.Image.ConfigDigest, want.Image.ConfigDigest)
			}
			wantReqs := len(want.Layers)
			if tt.wantDone {
				wantReqs = 0
			}
			if got := len(b.OfType(events.LayerRequestedType)); got != wantReqs {
				t.Errorf("%d layer.requested events, want %d", got, wantReqs)
			}
		})
	}
}

// The stored manifest is what the flattener writes: the image's raw manifest.
func TestResolvedManifestIsRaw(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	s, b := newService(t)
	job := eventstest.Job("http://" + host + "/demo/tools:latest")
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
		t.Fatal(err)
	}
	r := eventstest.Decode[events.ImageResolved](t, b.OfType(events.ImageResolvedType)[0])
	desc, err := descsOf(s).Get(context.Background(), r.Image) // checks the manifest against r.Image.Digest
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Config.Digest.String(), r.Image.ConfigDigest; got != want {
		t.Errorf("manifest config %s, ConfigDigest %s", got, want)
	}
	if got, want := r.Image.MediaType, string(types.OCIManifestSchema1); got != want {
		t.Errorf("MediaType = %q, want %q", got, want)
	}
}

// checkRefused checks that a wish fails at once, on its first attempt: Handle returns a
// permanent error naming the wanted substrings (the bus publishes image.failed with it, no
// redelivery), nothing is published and no description is stored.
func checkRefused(t *testing.T, s *Service, b *eventstest.Bus, job events.Job, wantMsg ...string) {
	t.Helper()
	err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1))
	if !events.IsPermanent(err) {
		t.Fatalf("Handle returned %v; a refused image must fail at once (a permanent error), not be retried", err)
	}
	if got := b.Types(); len(got) != 0 {
		t.Errorf("published %v, want nothing: the bus reports the failure", got)
	}
	for _, m := range wantMsg {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not contain %q", err, m)
		}
	}
	if n := len(descsOf(s).puts); n != 0 {
		t.Errorf("%d descriptions stored for a refused image", n)
	}
}

func pushImage(t *testing.T, host, repo string, img v1.Image) {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
}

// A config over 4 MiB is refused from its size in the manifest, before it is fetched.
func TestResolveConfigTooLarge(t *testing.T) {
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{"huge": strings.Repeat("x", events.MaxConfigBytes)}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Size <= events.MaxConfigBytes {
		t.Fatalf("config of %d bytes, want over %d", m.Config.Size, events.MaxConfigBytes)
	}
	var configGets atomic.Int32
	host := registrytest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+m.Config.Digest.String()) {
				configGets.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	pushImage(t, host, "big/config:1", img)
	s, b := newService(t)
	checkRefused(t, s, b, eventstest.Job("http://"+host+"/big/config:1"),
		"big/config:1", fmt.Sprint(m.Config.Size), fmt.Sprint(events.MaxConfigBytes))
	if n := configGets.Load(); n != 0 {
		t.Errorf("the config was fetched %d times; it must be refused before it is read", n)
	}
}

func TestResolveTooManyLayers(t *testing.T) {
	host := registrytest.Serve(t, nil)
	for _, n := range []int{3, 4} {
		img, err := random.Image(64, int64(n))
		if err != nil {
			t.Fatal(err)
		}
		pushImage(t, host, fmt.Sprintf("deep/layers:%d", n), img)
	}
	t.Run("at the limit", func(t *testing.T) {
		s, b := newService(t)
		s.MaxLayers = 3
		job := eventstest.Job("http://" + host + "/deep/layers:3")
		if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
			t.Fatal(err)
		}
		if got := len(b.OfType(events.LayerRequestedType)); got != 3 || len(b.OfType(events.ImageFailedType)) != 0 {
			t.Errorf("published %v, want image.resolved and 3 layer.requested", b.Types())
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		s, b := newService(t)
		s.MaxLayers = 3
		checkRefused(t, s, b, eventstest.Job("http://"+host+"/deep/layers:4"), "deep/layers:4", "4 layers", "limit of 3")
	})
}
