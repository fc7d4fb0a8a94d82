package dumbremote

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fakeS3 serves gofakes3 (in memory, each object written atomically as S3 does) on a
// loopback port with one bucket and returns its remote.
func fakeS3(t *testing.T, bucket string) string {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gofakes3.New(backend).Server())
	srv.Listener = ln
	srv.Config.ErrorLog = nil
	srv.Start()
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	return "s3://" + bucket + "/images?region=us-east-1&endpoint=" + srv.URL
}

// Concurrent exporters of images sharing blobs to one S3 remote (gofakes3: S3's semantics,
// where an object appears whole; s3rver lacks them, see TestConcurrentExports) never corrupt
// it: every image reads back whole and the remote verifies.
func TestConcurrentExportsS3(t *testing.T) {
	ctx := context.Background()
	remote := fakeS3(t, "flatbed")
	base, app := sharing(t)
	_, app2 := sharing(t)
	ls, _ := base.Layers()
	app2, _ = mutate.AppendLayers(app2, ls...)
	imgs := map[string]v1.Image{"example.com/a:1": app, "example.com/b:1": app2, "example.com/c:1": base}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(imgs))
	for n, img := range imgs {
		for range 2 {
			wg.Go(func() {
				r, err := Open(ctx, remote, WithTransport(http.DefaultTransport.(*http.Transport).Clone()))
				if err == nil {
					_, _, err = r.Export(ctx, ref(t, n), img, AsIs)
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(ctx, remote)
	if err != nil {
		t.Fatal(err)
	}
	for n, img := range imgs {
		_, art, err := r.Import(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if got := digestOf(t, art.(v1.Image)); got != digestOf(t, img) {
			t.Errorf("%s: %s, want %s", n, got, digestOf(t, img))
		}
		if err := validate.Image(art.(v1.Image)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if rep, err := r.Verify(ctx); err != nil || len(rep.Unfinished) != 0 || rep.References == 0 {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}
