package resolver

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
)

// requestLog notes what the registry is asked: "HEAD manifest", "GET manifest", "GET blob",
// "GET ping" (GET /v2/).
type requestLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		what := r.URL.Path
		switch {
		case r.URL.Path == "/v2/":
			what = "ping"
		case strings.Contains(r.URL.Path, "/manifests/"):
			what = "manifest"
		case strings.Contains(r.URL.Path, "/blobs/"):
			what = "blob"
		}
		l.mu.Lock()
		l.lines = append(l.lines, r.Method+" "+what)
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// take returns what was asked since the last take, pings left out unless withPings.
func (l *requestLog) take(withPings bool) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.lines {
		if withPings || s != "GET ping" {
			out = append(out, s)
		}
	}
	l.lines = nil
	return out
}

// resolved handles one wish for image with s and returns its image.resolved.
func resolved(t *testing.T, s *Service, b *eventstest.Bus, job events.Job) events.ImageResolved {
	t.Helper()
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
		t.Fatal(err)
	}
	res := b.OfType(events.ImageResolvedType)
	if len(res) != 1 {
		t.Fatalf("published %v, want one %s", b.Types(), events.ImageResolvedType)
	}
	return eventstest.Decode[events.ImageResolved](t, res[0])
}

func writeRecord(t testing.TB, st *store.Store, name string, rec lifecycle.Record) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.WriteFileAtomic(filepath.Join(st.MetadataDir(name), lifecycle.RecordFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func headDigest(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest.String()
}

// An image the store holds unchanged costs one HEAD of its manifest and no GET: its digest is
// the stored manifest's, or the recorded index's. Anything else is read with a GET as before,
// and the image published is the same either way.
func TestResolveUnchangedWithOneHEAD(t *testing.T) {
	var log requestLog
	host := registrytest.Serve(t, log.wrap)
	pushDemo(t, host)
	amd64 := pushIndex(t, host, "multi/arch:1",
		v1.Platform{OS: "linux", Architecture: "arm64"},
		v1.Platform{OS: "linux", Architecture: "amd64"},
	)["linux/amd64"]
	hello := eventstest.Describe(t, demo(t, "demo/hello:1.0").Image, host, "demo/hello", "1.0")
	other := eventstest.Describe(t, demo(t, "demo/hello:2.0").Image, host, "demo/hello", "2.0")
	multi := eventstest.Describe(t, amd64, host, "multi/arch", "1")
	index := headDigest(t, host+"/multi/arch:1")
	pinned := "demo/hello@" + hello.Image.Digest

	converted := func(d *events.Description) storeState {
		return storeState{manifest: d.Manifest, flat: true, public: true}
	}
	tests := []struct {
		name         string
		image        string
		config       string // the flat tree present
		state        storeState
		rec          *lifecycle.Record
		convertAgain bool
		wantDone     bool
		want         []string // manifest requests
	}{
		{"tag unchanged", "demo/hello:1.0", hello.Image.ConfigDigest, converted(hello), nil, false, true,
			[]string{"HEAD manifest"}},
		{"tag moved", "demo/hello:1.0", other.Image.ConfigDigest, converted(other), nil, false, false,
			[]string{"HEAD manifest", "GET manifest", "GET blob"}},
		{"nothing recorded", "demo/hello:1.0", hello.Image.ConfigDigest, storeState{flat: true, public: true}, nil, false, false,
			[]string{"GET manifest", "GET blob"}},
		{"no flat tree", "demo/hello:1.0", hello.Image.ConfigDigest, storeState{manifest: hello.Manifest, public: true}, nil, false, false,
			[]string{"GET manifest", "GET blob"}},
		{"a layer directory lost", "demo/hello:1.0", hello.Image.ConfigDigest, storeState{manifest: hello.Manifest, flat: true, public: true, lostLayer: true}, nil, false, false,
			[]string{"GET manifest", "GET blob"}},
		{"convert again", "demo/hello:1.0", hello.Image.ConfigDigest, converted(hello), nil, true, false,
			[]string{"GET manifest", "GET blob"}},
		{"digest unchanged", pinned, hello.Image.ConfigDigest, converted(hello), nil, false, true,
			nil},
		{"index unchanged", "multi/arch:1", multi.Image.ConfigDigest, converted(multi),
			&lifecycle.Record{ManifestDigest: multi.Image.Digest, IndexDigest: index}, false, true,
			[]string{"HEAD manifest"}},
		{"index, converted before digests were recorded", "multi/arch:1", multi.Image.ConfigDigest, converted(multi),
			&lifecycle.Record{}, false, true,
			[]string{"HEAD manifest", "GET manifest", "GET manifest"}},
		{"index recorded for another manifest", "multi/arch:1", multi.Image.ConfigDigest, converted(multi),
			&lifecycle.Record{ManifestDigest: other.Image.Digest, IndexDigest: index}, false, true,
			[]string{"HEAD manifest", "GET manifest", "GET manifest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := eventstest.Job("http://" + host + "/" + tt.image)
			imgName := host + "/" + tt.image

			// What a GET of the image publishes, from an empty store.
			cold, b := newService(t)
			want := resolved(t, cold, b, job).Image

			s, b := newService(t)
			st := store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))
			writeStore(t, st, imgName, tt.config, tt.state)
			if tt.rec != nil {
				writeRecord(t, st, imgName, *tt.rec)
			}
			job.ConvertAgain = tt.convertAgain
			log.take(true)
			r := resolved(t, s, b, job)
			if got := log.take(false); strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Errorf("asked the registry %q, want %q", got, tt.want)
			}
			if r.AlreadyConverted != tt.wantDone {
				t.Errorf("AlreadyConverted = %v, want %v", r.AlreadyConverted, tt.wantDone)
			}
			if r.Image != want {
				t.Errorf("published %+v\nwant      %+v (as read with a GET)", r.Image, want)
			}
			if err := r.Image.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

// A registry that refuses HEAD is read with a GET: the image is still found unchanged.
func TestResolveUnchangedWithoutHEAD(t *testing.T) {
	var refuse atomic.Bool
	host := registrytest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead && refuse.Load() {
				http.Error(w, "", http.StatusMethodNotAllowed)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	pushDemo(t, host)
	refuse.Store(true)
	hello := eventstest.Describe(t, demo(t, "demo/hello:1.0").Image, host, "demo/hello", "1.0")
	s, b := newService(t)
	job := eventstest.Job("http://" + host + "/demo/hello:1.0")
	writeStore(t, store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo)), host+"/demo/hello:1.0", hello.Image.ConfigDigest,
		storeState{manifest: hello.Manifest, flat: true, public: true})
	if r := resolved(t, s, b, job); !r.AlreadyConverted || r.Image.Digest != hello.Image.Digest {
		t.Errorf("published %+v, want it already converted", r)
	}
}

// One service pings the registry once, however many wishes and repositories it resolves.
func TestResolvePingsOnce(t *testing.T) {
	var log requestLog
	host := registrytest.Serve(t, log.wrap)
	pushDemo(t, host)
	s, _ := newService(t)
	log.take(true)
	for _, ref := range []string{"demo/hello:1.0", "demo/hello:2.0", "demo/tools:latest", "demo/hello:1.0"} {
		b := &eventstest.Bus{}
		s.Bus = b
		resolved(t, s, b, eventstest.Job("http://"+host+"/"+ref))
	}
	pings := 0
	for _, l := range log.take(true) {
		if l == "GET ping" {
			pings++
		}
	}
	if pings != 1 {
		t.Errorf("%d pings (GET /v2/) for 4 wishes in 2 repositories, want 1", pings)
	}
}
