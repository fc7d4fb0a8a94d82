package resolver

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

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
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
)

func newService(t *testing.T) (*Service, *eventstest.Bus) {
	b := &eventstest.Bus{}
	return &Service{StoreRoot: t.TempDir(), Bus: b, Log: quietLog(), Registry: registrytest.Options()}, b
}

func demo(t *testing.T, ref string) imagegen.Named {
	t.Helper()
	for _, n := range imagegen.Demo() {
		if n.Ref() == ref {
			return n
		}
	}
	t.Fatalf("no demo image %s", ref)
	return imagegen.Named{}
}

func pushDemo(t *testing.T, host string) {
	t.Helper()
	if err := imagegen.Push(context.Background(), host, imagegen.Demo()); err != nil {
		t.Fatal(err)
	}
}

// checkResolved checks the image.resolved and layer.requested events of one wish.
func checkResolved(t *testing.T, b *eventstest.Bus, job events.Job, wantName string, want events.Image) events.Image {
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
	if r.Job != job {
		t.Errorf("Job = %+v, want %+v", r.Job, job)
	}
	for _, c := range []struct{ what, got, want string }{
		{"Name", img.Name, wantName},
		{"Digest", img.Digest, want.Digest},
		{"ConfigDigest", img.ConfigDigest, want.ConfigDigest},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if !slices.Equal(img.Layers, want.Layers) {
		t.Errorf("Layers = %+v\nwant %+v", img.Layers, want.Layers)
	}
	if string(img.Manifest) != string(want.Manifest) {
		t.Errorf("Manifest = %s\nwant %s", img.Manifest, want.Manifest)
	}
	if !slices.Equal(img.Config.Env, want.Config.Env) || !slices.Equal(img.Config.Cmd, want.Config.Cmd) {
		t.Errorf("Config = %+v, want Env %v Cmd %v", img.Config, want.Config.Env, want.Config.Cmd)
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
		if lr.Image.ConfigDigest != want.ConfigDigest || lr.Image.Layers[lr.Index] != want.Layers[i] {
			t.Errorf("request %d: config %s layer %+v, want %s %+v", i, lr.Image.ConfigDigest, lr.Image.Layers[lr.Index], want.ConfigDigest, want.Layers[i])
		}
		if lr.Job != job {
			t.Errorf("request %d: Job = %+v, want %+v", i, lr.Job, job)
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
			img := checkResolved(t, b, job, host+"/"+ref, eventstest.Image(t, demo(t, ref).Image))
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
	img := checkResolved(t, b, job, host+"/multi/arch:1", eventstest.Image(t, imgs["linux/amd64"]))
	if got, want := img.Platform, "linux/amd64"; got != want {
		t.Errorf("Platform = %q, want %q", got, want)
	}
}

func TestResolveIndexWithoutAmd64(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushIndex(t, host, "arm/only:1", v1.Platform{OS: "linux", Architecture: "arm64"})
	s, b := newService(t)
	job := eventstest.Job("http://" + host + "/arm/only:1")
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
		t.Fatalf("Handle returned %v; a missing platform is permanent and must become image.failed", err)
	}
	if got := b.Types(); !slices.Equal(got, []string{events.ImageFailedType}) {
		t.Fatalf("published %v, want only %s", got, events.ImageFailedType)
	}
	f := eventstest.Decode[events.ImageFailed](t, b.Envelopes()[0])
	if !strings.Contains(f.Error, "arm/only:1") {
		t.Errorf("Error %q does not name the image", f.Error)
	}
}

func TestResolveFailures(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	tests := []struct {
		name    string
		image   string
		attempt int
		wantMsg []string // substrings of ImageFailed.Error
	}{
		{"wildcard tag", "http://" + host + "/demo/hello:1.*", 1, []string{"not supported yet", "demo/hello:1.*"}},
		{"missing tag on the first attempt", "http://" + host + "/demo/hello:9.9", 1, []string{"demo/hello:9.9"}},
		{"missing repository", "http://" + host + "/demo/nothing:1.0", 1, []string{"demo/nothing:1.0"}},
		{"unparsable image", "http://" + host + "/UPPER/case:1", 1, []string{"UPPER/case"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := newService(t)
			job := eventstest.Job(tt.image)
			if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, tt.attempt)); err != nil {
				t.Fatalf("Handle returned %v; a permanent failure must be published, not retried", err)
			}
			if got := b.Types(); !slices.Equal(got, []string{events.ImageFailedType}) {
				t.Fatalf("published %v, want only %s", got, events.ImageFailedType)
			}
			f := eventstest.Decode[events.ImageFailed](t, b.Envelopes()[0])
			if f.Stage != Name || f.Image != nil || f.Job != job {
				t.Errorf("ImageFailed = %+v, want stage %s, no image, the job", f, Name)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(f.Error, m) {
					t.Errorf("Error %q does not contain %q", f.Error, m)
				}
			}
		})
	}
}

func TestResolveTemporaryFailure(t *testing.T) {
	var calls atomic.Int32
	var down atomic.Bool
	host := registrytest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if down.Load() && strings.Contains(r.URL.Path, "/manifests/") {
				calls.Add(1)
				http.Error(w, "try later", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	pushDemo(t, host)
	down.Store(true)
	job := eventstest.Job("http://" + host + "/demo/hello:1.0")

	s, b := newService(t)
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err == nil {
		t.Error("503 on the first attempt: Handle returned nil, want an error (redelivery)")
	}
	if len(b.Envelopes()) != 0 {
		t.Errorf("503 on the first attempt published %v", b.Types())
	}
	if calls.Load() == 0 {
		t.Error("the registry was never asked")
	}

	s, b = newService(t)
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 3)); err != nil {
		t.Fatalf("503 on the last attempt: Handle returned %v, want nil and image.failed", err)
	}
	if got := b.Types(); !slices.Equal(got, []string{events.ImageFailedType}) {
		t.Errorf("published %v, want only %s", got, events.ImageFailedType)
	}
}

// storeState is what the store holds of an image before the wish.
type storeState struct {
	manifest []byte // nil: no manifest.json
	flat     bool
	public   bool
}

// writeStore lays the store out as the flattener leaves it.
func writeStore(t *testing.T, st *store.Store, name, config string, s storeState) {
	t.Helper()
	if s.manifest != nil {
		if _, err := store.WriteFileAtomic(st.ManifestPath(name), s.manifest, 0o644); err != nil {
			t.Fatal(err)
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
		if _, err := store.SymlinkAtomic(target, st.PublicPath(name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResolveAlreadyConverted(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	want := eventstest.Image(t, demo(t, "demo/hello:1.0").Image)
	other := eventstest.Image(t, demo(t, "demo/hello:2.0").Image)
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
		{"unreadable manifest", storeState{manifest: []byte("{"), flat: true, public: true}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := newService(t)
			job := eventstest.Job("http://" + host + "/demo/hello:1.0")
			job.ConvertAgain = tt.convertAgain
			name := host + "/demo/hello:1.0"
			writeStore(t, store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo)), name, want.ConfigDigest, tt.state)
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
			if r.Image.ConfigDigest != want.ConfigDigest {
				t.Errorf("ConfigDigest = %s, want %s", r.Image.ConfigDigest, want.ConfigDigest)
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
	var m v1.Manifest
	if err := json.Unmarshal(r.Image.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Config.Digest.String(), r.Image.ConfigDigest; got != want {
		t.Errorf("manifest config %s, ConfigDigest %s", got, want)
	}
	if got, want := r.Image.MediaType, string(types.OCIManifestSchema1); got != want {
		t.Errorf("MediaType = %q, want %q", got, want)
	}
}
