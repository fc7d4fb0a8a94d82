package thinpusher

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
)

// methodLog records the method and path of every request a registry is sent.
type methodLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *methodLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.seen = append(l.seen, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// take returns the requests recorded since the last take.
func (l *methodLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.seen
	l.seen = nil
	return out
}

func manifestPuts(reqs []string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, "PUT ") && strings.Contains(r, "/manifests/") {
			n++
		}
	}
	return n
}

func resolvedAlready(t *testing.T, job events.Job) events.ImageResolved {
	t.Helper()
	return events.ImageResolved{Job: job, Image: hello(t).Image, AlreadyConverted: true}
}

func handleResolved(t *testing.T, s *Service, in events.ImageResolved) error {
	t.Helper()
	return s.Handle(context.Background(), eventstest.Delivery(t, events.ImageResolvedType, in.Job, in, 1))
}

// An image already in the store gets the thin image its wish names when the target does not
// hold it (output_format changed), and nothing is pushed when it does (one HEAD): thin images
// are deterministic. Either way thin.pushed ends the wish as already converted.
func TestAlreadyConvertedGetsItsThinImage(t *testing.T) {
	var l methodLog
	host := registrytest.Serve(t, l.wrap)
	job := eventstest.Job("https://registry.example/demo/hello:2.0")
	job.ThinImage = "http://" + host + "/unpacked/new-format/hello:2.0"
	s, b := newService(t)

	check := func(what string, wantPuts int) events.ThinPushed {
		t.Helper()
		if err := handleResolved(t, s, resolvedAlready(t, job)); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		reqs := l.take()
		t.Logf("%s: %q", what, reqs)
		if got := manifestPuts(reqs); got != wantPuts {
			t.Errorf("%s: %d manifest PUTs, want %d", what, got, wantPuts)
		}
		envs := b.Envelopes()
		if len(envs) == 0 || envs[len(envs)-1].Type != events.ThinPushedType {
			t.Fatalf("%s: published %v, want a %s last", what, b.Types(), events.ThinPushedType)
		}
		out := eventstest.Decode[events.ThinPushed](t, envs[len(envs)-1])
		hex := store.Hex(out.Image.ConfigDigest)
		if !out.AlreadyConverted || out.Skipped || out.ThinImage != job.ThinImage || out.FlatPath != ".flat/"+hex[:2]+"/"+hex ||
			out.PublicPath != out.Image.Name {
			t.Errorf("%s: ThinPushed = %+v", what, out)
		}
		return out
	}

	first := check("target without the thin image", 1)
	ref, err := name.ParseReference(strings.TrimPrefix(job.ThinImage, "http://"), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(ref)
	if err != nil {
		t.Fatalf("the thin image was not pushed: %v", err)
	}
	if d.Digest.String() != first.ThinDigest {
		t.Errorf("the target names %s, ThinDigest is %s", d.Digest, first.ThinDigest)
	}
	again := check("target holding the thin image", 0)
	if again.ThinDigest != first.ThinDigest {
		t.Errorf("ThinDigest %s then %s: the thin image is not deterministic", first.ThinDigest, again.ThinDigest)
	}

	// Another image under the thin name (an old thin image of another format, say) is replaced.
	other := job
	other.Image = "https://registry.example/demo/hello:2.0-other"
	in := resolvedAlready(t, other)
	if err := handleResolved(t, s, in); err != nil { // the origin differs: another thin image
		t.Fatal(err)
	}
	l.take()
	check("target holding another image", 1)
}

// Only an image already converted whose wish pushes a thin image is the thin pusher's: a
// resolved image being converted gets its thin image from image.flattened.
func TestResolvedWithoutThinWork(t *testing.T) {
	var l methodLog
	host := registrytest.Serve(t, l.wrap)
	thinName := "http://" + host + "/unpacked/hello_thin:2.0"
	for _, tt := range []struct {
		name      string
		converted bool
		skip      bool
		thinImage string
		outputs   []string
	}{
		{"being converted", false, false, thinName, nil},
		{"skip-thin-image", true, true, thinName, nil},
		{"no thin image name", true, false, "", nil},
		{"outputs without thin", true, false, thinName, []string{events.OutputUnpacked}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			job := eventstest.Job("https://registry.example/demo/hello:2.0")
			job.SkipThin, job.ThinImage, job.Outputs = tt.skip, tt.thinImage, tt.outputs
			in := resolvedAlready(t, job)
			in.AlreadyConverted = tt.converted
			s, b := newService(t)
			if err := handleResolved(t, s, in); err != nil {
				t.Fatal(err)
			}
			if len(b.Envelopes()) != 0 {
				t.Errorf("published %v", b.Types())
			}
			if reqs := l.take(); len(reqs) != 0 {
				t.Errorf("registry requests %q", reqs)
			}
		})
	}
}

// The thin pusher reads image.resolved (declared with the bus's consumers).
func TestConsumesImageResolved(t *testing.T) {
	if !slices.Contains(events.Consumers()[Name], events.ImageResolvedType) {
		t.Errorf("the %s consumer reads %v, not %s", Name, events.Consumers()[Name], events.ImageResolvedType)
	}
}
