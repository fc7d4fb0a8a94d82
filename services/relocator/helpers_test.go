package relocator

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/registry/registrytest"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newService() (*Service, *eventstest.Bus) {
	b := &eventstest.Bus{}
	return &Service{Bus: b, Log: quietLog(), Registry: registrytest.Options(), MaxAttempts: 3, Metrics: NewMetrics(prometheus.NewRegistry())}, b
}

// handle delivers the image.resolved of img, found as job.Image, on the given attempt.
func handle(t *testing.T, s *Service, job events.Job, img events.Image, attempt int) error {
	t.Helper()
	in := events.ImageResolved{Job: job, Image: img}
	return s.Handle(context.Background(), eventstest.Delivery(t, events.ImageResolvedType, job, in, attempt))
}

// relocateJob asks for image to be relocated under prefix alone.
func relocateJob(image, prefix string) events.Job {
	job := eventstest.Job(image)
	job.CvmfsRepo = ""
	job.Outputs = []string{events.OutputRelocated}
	job.RelocatePrefix = prefix
	return job
}

// push writes art to ref (host:port/repo:tag or @digest, plain http) and returns its digest.
func push(t *testing.T, ref string, art remote.Taggable) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	switch a := art.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(r, a)
	case v1.Image:
		err = remote.Write(r, a)
	}
	if err != nil {
		t.Fatal(err)
	}
	raw, err := art.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := v1.SHA256(bytes.NewReader(raw))
	return h
}

// digestAt is the digest ref (host:port/repo:tag or @digest) is served with.
func digestAt(t *testing.T, ref string) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(r)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}

// counting counts the requests a registry sees.
type counting struct{ n atomic.Int32 }

func (c *counting) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.n.Add(1)
		h.ServeHTTP(w, r)
	})
}

// served starts a registry serving ref (repo:tag) as a random image and returns its host and
// the image.resolved reference of it.
func served(t *testing.T, repo, tag string, img v1.Image) (string, events.Image) {
	t.Helper()
	host := registrytest.Serve(t, nil)
	push(t, host+"/"+repo+":"+tag, img)
	return host, eventstest.Describe(t, img, host, repo, tag).Image
}
