package thinpusher

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
	"flatbed.dev/pkg/thin"
)

// hello is what the resolver stores of demo/hello:2.0 (3 layers) found at
// registry.example/demo/hello:2.0.
func hello(t *testing.T) *events.Description {
	t.Helper()
	for _, d := range imagegen.Demo() {
		if d.Ref() == "demo/hello:2.0" {
			return eventstest.Describe(t, d.Image, "registry.example", "demo/hello", "2.0")
		}
	}
	t.Fatal("no demo image demo/hello:2.0")
	return nil
}

// flattened is the image.flattened event of demo/hello:2.0 for job.
func flattened(t *testing.T, job events.Job) events.ImageFlattened {
	t.Helper()
	img := hello(t).Image
	hex := store.Hex(img.ConfigDigest)
	return events.ImageFlattened{Job: job, Image: img, FlatPath: ".flat/" + hex[:2] + "/" + hex, PublicPath: img.Name}
}

type requestCounter struct{ n atomic.Int32 }

func (c *requestCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		h.ServeHTTP(w, r)
	})
}

// newService is a thin pusher whose description store holds demo/hello:2.0, as the resolver
// leaves it.
func newService(t *testing.T) (*Service, *eventstest.Bus) {
	t.Helper()
	b := &eventstest.Bus{}
	descs := &eventstest.Descriptions{}
	if err := descs.Put(context.Background(), hello(t)); err != nil {
		t.Fatal(err)
	}
	return &Service{Bus: b, Log: quietLog(), Registry: registrytest.Options(), MaxAttempts: 3, Descriptions: descs}, b
}

func handle(t *testing.T, s *Service, in events.ImageFlattened, attempt int) error {
	t.Helper()
	return s.Handle(context.Background(), eventstest.Delivery(t, events.ImageFlattenedType, in.Job, in, attempt))
}

func TestSkipped(t *testing.T) {
	var c requestCounter
	host := registrytest.Serve(t, c.wrap)
	tests := []struct {
		name      string
		skip      bool
		thinImage string
		outputs   []string
	}{
		{"skip-thin-image", true, "http://" + host + "/unpacked/hello_thin:2.0", nil},
		{"no thin image name", false, "", nil},
		{"outputs without thin", false, "http://" + host + "/unpacked/hello_thin:2.0", []string{events.OutputUnpacked}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := eventstest.Job("https://registry.example/demo/hello:2.0")
			job.SkipThin, job.ThinImage, job.Outputs = tt.skip, tt.thinImage, tt.outputs
			in := flattened(t, job)
			s, b := newService(t)
			if err := handle(t, s, in, 1); err != nil {
				t.Fatal(err)
			}
			if got := b.Types(); !slices.Equal(got, []string{events.ThinPushedType}) {
				t.Fatalf("published %v, want one %s", got, events.ThinPushedType)
			}
			out := eventstest.Decode[events.ThinPushed](t, b.Envelopes()[0])
			if !out.Skipped || out.ThinDigest != "" {
				t.Errorf("ThinPushed = skipped %v digest %q, want true and none", out.Skipped, out.ThinDigest)
			}
			if out.FlatPath != in.FlatPath || out.PublicPath != in.PublicPath || !reflect.DeepEqual(out.Job, job) {
				t.Errorf("ThinPushed did not pass on the paths and the job: %+v", out)
			}
			if got := c.n.Load(); got != 0 {
				t.Errorf("%d registry requests for a skipped thin image", got)
			}
		})
	}
}

func TestPush(t *testing.T) {
	host := registrytest.Serve(t, nil)
	tests := []struct {
		repo    string
		wantURL func(hex string) string
	}{
		{"unpacked.cern.ch", func(hex string) string { return "cvmfs://unpacked.cern.ch/.layers/" + hex[:2] + "/" + hex + "/layerfs" }},
		{"unpacked.cern.ch/sub/dir", func(hex string) string {
			return "cvmfs://unpacked.cern.ch/sub/dir/.layers/" + hex[:2] + "/" + hex + "/layerfs"
		}},
	}
	for i, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			job := eventstest.Job("https://registry.example/demo/hello:2.0")
			job.CvmfsRepo = tt.repo
			job.ThinImage = "http://" + host + "/unpacked/sync/hello_thin:" + string(rune('a'+i))
			in := flattened(t, job)
			s, b := newService(t)
			if err := handle(t, s, in, 1); err != nil {
				t.Fatal(err)
			}
			if got := b.Types(); !slices.Equal(got, []string{events.ThinPushedType}) {
				t.Fatalf("published %v, want one %s", got, events.ThinPushedType)
			}
			out := eventstest.Decode[events.ThinPushed](t, b.Envelopes()[0])
			if out.Skipped || out.ThinImage != job.ThinImage || out.ThinDigest == "" {
				t.Errorf("ThinPushed = skipped %v image %q digest %q", out.Skipped, out.ThinImage, out.ThinDigest)
			}

			ref, err := name.ParseReference(strings.TrimPrefix(job.ThinImage, "http://"), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(ref)
			if err != nil {
				t.Fatalf("reading the pushed thin image back: %v", err)
			}
			d, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if d.String() != out.ThinDigest {
				t.Errorf("pushed digest %s, ThinDigest %s", d, out.ThinDigest)
			}
			m, err := thin.Read(img)
			if err != nil {
				t.Fatal(err)
			}
			if m.Version != "1.0" || m.Origin != job.Image {
				t.Errorf("thin.json version %q origin %q, want 1.0 and %q", m.Version, m.Origin, job.Image)
			}
			desc := hello(t)
			var want []thin.Layer
			for _, l := range desc.Layers {
				hex := store.Hex(l.Digest)
				want = append(want, thin.Layer{Digest: hex, URL: tt.wantURL(hex)})
			}
			if !slices.Equal(m.Layers, want) {
				t.Errorf("thin.json layers = %+v\nwant %+v", m.Layers, want)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			wantEnv := append([]string{"CVMFS_IMAGE=true"}, desc.Config.Env...)
			if !slices.Equal(cf.Config.Env, wantEnv) {
				t.Errorf("thin config Env = %q, want %q", cf.Config.Env, wantEnv)
			}
			if !slices.Equal(cf.Config.Cmd, desc.Config.Cmd) {
				t.Errorf("thin config Cmd = %q, want %q", cf.Config.Cmd, desc.Config.Cmd)
			}
			if ls, err := img.Layers(); err != nil || len(ls) != 1 {
				t.Errorf("thin image has %d layers (%v), want 1", len(ls), err)
			}
		})
	}
}

func TestPushFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		reason []string // in the failure
	}{
		{"refused credentials", http.StatusForbidden, `{"errors":[{"code":"DENIED","message":"no"}]}`, []string{"check the credentials"}},
		// Retried within the delivery until the registry timeout runs out, then final.
		{"registry down", http.StatusServiceUnavailable, `{"errors":[{"code":"UNAVAILABLE","message":"later"}]}`,
			[]string{"503", "the registry timeout (--registry-timeout 300ms) ran out"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A registry that answers every upload with tc.status.
			var uploads atomic.Int32
			host := registrytest.Serve(t, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
						uploads.Add(1)
						http.Error(w, tc.body, tc.status)
						return
					}
					h.ServeHTTP(w, r)
				})
			})
			job := eventstest.Job("https://registry.example/demo/hello:2.0")
			job.ThinImage = "http://" + host + "/unpacked/sync/hello_thin:2.0"
			in := flattened(t, job)
			s, b := newService(t)
			s.Registry = append(s.Registry, registry.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Cap: 50 * time.Millisecond}),
				registry.WithTimeout(300*time.Millisecond))
			err := handle(t, s, in, 1)
			if !events.IsPermanent(err) {
				t.Fatalf("Handle returned %v, want a permanent error (the bus reports it at once)", err)
			}
			if got := b.Types(); len(got) != 0 {
				t.Errorf("published %v, want nothing", got)
			}
			for _, r := range append([]string{job.ThinImage}, tc.reason...) {
				if !strings.Contains(err.Error(), r) {
					t.Errorf("error %q does not contain %q", err, r)
				}
			}
			// The thin image has two blobs (thin.json and the config): one try each.
			if tc.status == http.StatusForbidden && uploads.Load() > 2 {
				t.Errorf("%d uploads for refused credentials, want one per blob", uploads.Load())
			}
		})
	}
}

func TestBadThinImageName(t *testing.T) {
	job := eventstest.Job("https://registry.example/demo/hello:2.0")
	job.ThinImage = "http://registry.example/UPPER/x:1"
	in := flattened(t, job)
	s, b := newService(t)
	// A name that cannot be pushed to fails on the first attempt: retrying cannot mend it.
	if err := handle(t, s, in, 1); !events.IsPermanent(err) || !strings.Contains(err.Error(), "UPPER/x") {
		t.Fatalf("first attempt: %v, want a permanent error naming the thin image", err)
	}
	if got := b.Types(); len(got) != 0 {
		t.Fatalf("published %v, want nothing", got)
	}
}

// The layers and config of the thin image come from the stored description: without one it
// cannot be built, however often it is tried, and the wish fails at once.
func TestPushNoDescription(t *testing.T) {
	var c requestCounter
	host := registrytest.Serve(t, c.wrap)
	job := eventstest.Job("https://registry.example/demo/hello:2.0")
	job.ThinImage = "http://" + host + "/unpacked/sync/hello_thin:2.0"
	in := flattened(t, job)
	s, b := newService(t)
	s.Descriptions = &eventstest.Descriptions{} // empty
	err := handle(t, s, in, 1)
	if !events.IsPermanent(err) || !errors.Is(err, events.ErrNoDescription) {
		t.Fatalf("first attempt: %v, want a permanent %q", err, events.ErrNoDescription)
	}
	if got := b.Types(); len(got) != 0 {
		t.Fatalf("published %v, want nothing", got)
	}
	if got := c.n.Load(); got != 0 {
		t.Errorf("%d registry requests without a description", got)
	}
}
