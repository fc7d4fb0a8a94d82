package exporter

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/dumbremote"
	"flatbed.dev/pkg/dumbremote/s3test"
	"flatbed.dev/pkg/registry/registrytest"
)

// An image is exported to a directory and to an S3 remote, and image.exported names it with
// its digest and what was written; a second image sharing the first's base writes only its
// own blobs; a redelivery publishes the same event and writes nothing; the remote gives the
// images back with their digests.
func TestExport(t *testing.T) {
	srv := s3test.Start(t, "flatbed")
	host := registrytest.Serve(t, nil)
	base, _ := random.Image(2048, 2)
	extra, _ := random.Image(1024, 1)
	ls, _ := extra.Layers()
	app, _ := mutate.AppendLayers(base, ls...)
	baseRes := served(t, host, "team/base", "1", base)
	appRes := served(t, host, "team/app", "2", app)
	for kind, remote := range map[string]string{"dir": "dir://" + t.TempDir() + "/remote", "s3": srv.Remote("images")} {
		t.Run(kind, func(t *testing.T) {
			s, b := newService()
			if err := handle(t, s, exportJob("http://"+host+"/team/base:1", remote), baseRes, 1); err != nil {
				t.Fatal(err)
			}
			appJob := exportJob("http://"+host+"/team/app:2", remote)
			for attempt := 1; attempt <= 2; attempt++ {
				if err := handle(t, s, appJob, appRes, attempt); err != nil {
					t.Fatal(err)
				}
			}
			envs := b.Envelopes()
			if got := b.Types(); !slices.Equal(got, []string{events.ImageExportedType, events.ImageExportedType, events.ImageExportedType}) || envs[1].ID != envs[2].ID {
				t.Fatalf("published %v, want image.exported three times, the redelivery's with the same id", got)
			}
			first := eventstest.Decode[events.ImageExported](t, envs[0])
			second := eventstest.Decode[events.ImageExported](t, envs[1])
			again := eventstest.Decode[events.ImageExported](t, envs[2])
			if first.BlobsUploaded != 4 || first.BlobsPresent != 0 {
				t.Errorf("base: %d uploaded, %d present; want 4 and 0", first.BlobsUploaded, first.BlobsPresent)
			}
			if second.BlobsUploaded != 3 || second.BlobsPresent != 2 || second.BytesUploaded == 0 {
				t.Errorf("app: %d uploaded (%d bytes), %d present; want its new layer, config and manifest written, the base's 2 layers present",
					second.BlobsUploaded, second.BytesUploaded, second.BlobsPresent)
			}
			if again.BlobsUploaded != 0 || again.BlobsPresent != 5 {
				t.Errorf("redelivery: %d uploaded, %d present; want nothing written", again.BlobsUploaded, again.BlobsPresent)
			}
			if want := host + "/team/app:2@" + appRes.Digest; second.Reference != want {
				t.Errorf("reference %s, want %s", second.Reference, want)
			}
			if got := testutil.ToFloat64(s.Metrics.Blobs.WithLabelValues("uploaded")); got != 7 {
				t.Errorf("uploaded blobs metric %v, want 7", got)
			}
			r, err := dumbremote.Open(context.Background(), remote)
			if err != nil {
				t.Fatal(err)
			}
			for ref, want := range map[string]string{host + "/team/app:2": appRes.Digest, host + "/team/base:1": baseRes.Digest} {
				_, art, err := r.Import(context.Background(), ref)
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := art.(v1.Image).Digest(); got.String() != want {
					t.Errorf("%s on the remote is %s, want %s", ref, got, want)
				}
			}
			if _, err := r.Verify(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
}

// A wish that does not ask for the exported output is not the exporter's.
func TestNotAskedFor(t *testing.T) {
	host := registrytest.Serve(t, nil)
	img, _ := random.Image(256, 1)
	res := served(t, host, "team/app", "1", img)
	s, b := newService()
	if err := handle(t, s, eventstest.Job("http://"+host+"/team/app:1"), res, 1); err != nil {
		t.Fatal(err)
	}
	if len(b.Envelopes()) != 0 {
		t.Errorf("published %v for a wish without the exported output", b.Types())
	}
}

// What no new attempt can mend fails the wish at once, naming the image: a bucket that does
// not exist, a directory remote that cannot be made, an image the registry does not have.
func TestExportFailsForGood(t *testing.T) {
	srv := s3test.Start(t, "flatbed")
	host := registrytest.Serve(t, nil)
	img, _ := random.Image(256, 1)
	res := served(t, host, "team/app", "1", img)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct{ image, remote, want string }{
		"no such bucket":      {"http://" + host + "/team/app:1", strings.Replace(srv.Remote("x"), "s3://flatbed/", "s3://missing/", 1), "does not exist"},
		"directory not made":  {"http://" + host + "/team/app:1", "dir://" + file + "/remote", "creating the remote"},
		"image not in source": {"http://" + host + "/team/gone:1", "dir://" + t.TempDir(), host + "/team/gone:1"},
	} {
		t.Run(name, func(t *testing.T) {
			s, b := newService()
			err := handle(t, s, exportJob(tt.image, tt.remote), res, 1)
			if !events.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Handle = %v; want a permanent error with %q", err, tt.want)
			}
			if len(b.Envelopes()) != 0 {
				t.Errorf("published %v", b.Types())
			}
			if got := testutil.ToFloat64(s.Metrics.Images.WithLabelValues("failed")); got != 1 {
				t.Errorf("failed count %v, want 1", got)
			}
			t.Log(err)
		})
	}
}
