package exporter

import (
	"context"
	"io"
	"log/slog"
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

// exportJob asks for image to be exported to remote alone.
func exportJob(image, remote string) events.Job {
	job := eventstest.Job(image)
	job.CvmfsRepo = ""
	job.Outputs = []string{events.OutputExported}
	job.ExportRemote = remote
	return job
}

// served pushes img to host as repo:tag and returns the image.resolved reference of it.
func served(t *testing.T, host, repo, tag string, img v1.Image) events.Image {
	t.Helper()
	r, err := name.ParseReference(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return eventstest.Describe(t, img, host, repo, tag).Image
}
