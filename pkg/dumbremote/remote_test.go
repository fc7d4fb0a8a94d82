package dumbremote

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"flatbed.dev/pkg/dumbremote/s3test"
	"flatbed.dev/pkg/imageref"
)

// remotes opens a directory remote and an S3 remote (s3rver) for each test case.
func remotes(t *testing.T) map[string]*Remote {
	t.Helper()
	srv := s3test.Start(t, "flatbed")
	out := map[string]*Remote{}
	for kind, loc := range map[string]string{"dir": "dir://" + t.TempDir() + "/remote", "s3": srv.Remote("team/images")} {
		r, err := Open(context.Background(), loc)
		if err != nil {
			t.Fatal(err)
		}
		out[kind] = r
	}
	return out
}

func ref(t *testing.T, s string) imageref.Ref {
	t.Helper()
	r, err := imageref.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func digestOf(t *testing.T, a interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := a.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// sharing gives a base image and an app image made of the base's layers and two more.
func sharing(t *testing.T) (base, app v1.Image) {
	t.Helper()
	base, err := random.Image(3000, 2)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := random.Image(2000, 2)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := extra.Layers()
	if app, err = mutate.AppendLayers(base, ls...); err != nil {
		t.Fatal(err)
	}
	return base, app
}

// An image exported and read back is the same image, digest for digest; a second image
// sharing the first's base writes only its own blobs; an index comes back whole; names, tags
// and id prefixes resolve; the remote verifies.
func TestExportImport(t *testing.T) {
	ctx := context.Background()
	for kind, r := range remotes(t) {
		t.Run(kind, func(t *testing.T) {
			base, app := sharing(t)
			d, st, err := r.Export(ctx, ref(t, "example.com/team/base:1"), base, AsIs)
			if err != nil {
				t.Fatal(err)
			}
			if d.Digest != digestOf(t, base) || st.Uploaded != 4 || st.Present != 0 {
				t.Fatalf("first export: %s, %+v; want %s and 4 blobs written (2 layers, config, manifest)", d.Digest, st, digestOf(t, base))
			}
			_, st, err = r.Export(ctx, ref(t, "example.com/team/app:2"), app, AsIs)
			if err != nil {
				t.Fatal(err)
			}
			if st.Uploaded != 4 || st.Present != 2 {
				t.Errorf("second export wrote %d blobs and found %d; want 4 (2 new layers, config, manifest) and the base's 2 layers", st.Uploaded, st.Present)
			}
			idx, _ := random.Index(1000, 1, 2)
			if _, _, err := r.Export(ctx, ref(t, "example.com/team/multi:3"), idx, AsIs); err != nil {
				t.Fatal(err)
			}
			cfg, _ := app.ConfigName()
			for s, want := range map[string]v1.Hash{
				"example.com/team/app:2":                            digestOf(t, app),
				"example.com/team/base:1":                           digestOf(t, base),
				"example.com/team/multi:3":                          digestOf(t, idx),
				"example.com/team/app@" + digestOf(t, app).String(): digestOf(t, app),
				cfg.Hex[:12]:                                        digestOf(t, app), // an image id prefix, as docker shows it
				"sha256:" + digestOf(t, idx).Hex[:10]:               digestOf(t, idx),
			} {
				res, art, err := r.Import(ctx, s)
				if err != nil {
					t.Fatalf("import %s: %v", s, err)
				}
				if got := digestOf(t, art.(interface{ Digest() (v1.Hash, error) })); got != want || res.Descriptor.Digest != want {
					t.Errorf("%s: read back %s (resolved %s), want %s", s, got, res.Descriptor.Digest, want)
				}
				switch a := art.(type) {
				case v1.Image:
					if err := validate.Image(a); err != nil {
						t.Errorf("%s: %v", s, err)
					}
				case v1.ImageIndex:
					if err := validate.Index(a); err != nil {
						t.Errorf("%s: %v", s, err)
					}
				}
			}
			if _, err := r.Resolve(ctx, "example.com/team/app:nope"); !IsNotFound(err) {
				t.Errorf("a tag never exported resolves: %v", err)
			}
			rep, err := r.Verify(ctx)
			if err != nil || rep.References == 0 || len(rep.Unfinished) != 0 {
				t.Errorf("verify: %+v, %v", rep, err)
			}
		})
	}
}

// Two exporters writing images that share blobs to one remote at once never corrupt it: both
// images read back whole and the remote verifies. Run against a directory remote: s3rver
// itself is not safe for concurrent writes of one key (it writes an object's metadata file in
// place, so a concurrent reader gets half of it, and it removes a directory that has just
// emptied while another upload creates a file in it, and crashes), which S3 is.
func TestConcurrentExports(t *testing.T) {
	ctx := context.Background()
	dir, err := Open(ctx, "dir://"+t.TempDir()+"/remote")
	if err != nil {
		t.Fatal(err)
	}
	for kind, r := range map[string]*Remote{"dir": dir} {
		t.Run(kind, func(t *testing.T) {
			base, app := sharing(t)
			_, app2 := sharing(t)
			ls, _ := base.Layers()
			app2, _ = mutate.AppendLayers(app2, ls...) // shares base's layers too
			imgs := map[string]v1.Image{"example.com/a:1": app, "example.com/b:1": app2, "example.com/c:1": base}
			for round := 0; round < 2; round++ {
				var wg sync.WaitGroup
				errs := make(chan error, 2*len(imgs))
				for n, img := range imgs {
					for range 2 { // two writers of each image
						wg.Go(func() {
							// Each writer opens the remote itself, as two processes would.
							rr, err := Open(ctx, r.String())
							if err == nil {
								_, _, err = rr.Export(ctx, ref(t, n), img, AsIs)
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
			if rep, err := r.Verify(ctx); err != nil || len(rep.Unfinished) != 0 {
				t.Errorf("verify: %+v, %v", rep, err)
			}
		})
	}
}

// With Zstd the layers are kept recompressed; the import gives a valid image with the
// original config (image id), layers that unpack to the same content, and the remote keeps
// no gzip copy. An export as it is afterwards finds the layers present.
func TestExportZstd(t *testing.T) {
	ctx := context.Background()
	for kind, r := range remotes(t) {
		t.Run(kind, func(t *testing.T) {
			img, _ := random.Image(5000, 3)
			if _, st, err := r.Export(ctx, ref(t, "example.com/z:1"), img, Zstd); err != nil || st.Uploaded != 5 {
				t.Fatalf("export: %+v, %v", st, err)
			}
			_, art, err := r.Import(ctx, "example.com/z:1")
			if err != nil {
				t.Fatal(err)
			}
			got := art.(v1.Image)
			// validate.Image reads layers as gzip only: check the zstd ones by hand.
			if err := validate.Image(got, validate.Fast); err != nil {
				t.Fatal(err)
			}
			cf, _ := got.ConfigFile()
			gotLayers, _ := got.Layers()
			for i, l := range gotLayers {
				rc, err := l.Uncompressed()
				if err != nil {
					t.Fatal(err)
				}
				h, _, err := v1.SHA256(rc)
				rc.Close()
				if err != nil || h != cf.RootFS.DiffIDs[i] {
					t.Errorf("layer %d unpacks to %s (%v), want the diff_id %s", i, h, err, cf.RootFS.DiffIDs[i])
				}
			}
			wantCfg, _ := img.ConfigName()
			gotCfg, _ := got.ConfigName()
			if wantCfg != gotCfg {
				t.Errorf("config %s, want %s", gotCfg, wantCfg)
			}
			m, _ := got.Manifest()
			orig, _ := img.Manifest()
			for i, l := range m.Layers {
				if l.MediaType != "application/vnd.oci.image.layer.v1.tar+zstd" {
					t.Errorf("layer %d is %s", i, l.MediaType)
				}
				if ok, _ := r.HasBlob(ctx, orig.Layers[i].Digest); ok {
					t.Errorf("the gzip layer %s is on the remote too", orig.Layers[i].Digest)
				}
			}
			// As is means byte for byte: the gzip layers are written, config and manifest found.
			if _, st, err := r.Export(ctx, ref(t, "example.com/z:2"), img, AsIs); err != nil || st.Uploaded != 3 || st.Present != 2 {
				t.Errorf("re-export as is: %+v, %v; want the 3 gzip layers written, 2 blobs present", st, err)
			}
			if _, art, err := r.Import(ctx, "example.com/z:2"); err != nil || digestOf(t, art.(v1.Image)) != digestOf(t, img) {
				t.Errorf("import after the export as is: %v; want the original digest %s", err, digestOf(t, img))
			}
			if _, err := r.Verify(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

// The archive of an imported image loads as docker load reads it: ggcr's reader gives back
// the image with its config.
func TestWriteArchive(t *testing.T) {
	ctx := context.Background()
	r, err := Open(ctx, "dir://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(1000, 2)
	if _, _, err := r.Export(ctx, ref(t, "example.com/team/app:1"), img, AsIs); err != nil {
		t.Fatal(err)
	}
	_, art, err := r.Import(ctx, "example.com/team/app:1")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "app.tar")
	tag, _ := name.NewTag("example.com/team/app:1")
	if err := WriteArchive(path, map[name.Tag]v1.Image{tag: art.(v1.Image)}); err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.ConfigName()
	if got, _ := back.ConfigName(); got != want {
		t.Errorf("archive config %s, want %s", got, want)
	}
	if err := validate.Image(back); err != nil {
		t.Error(err)
	}
}

// A blob whose content is not its name, a sidecar that lies and a reference to a missing
// manifest are each reported; a blob left without a sidecar is unfinished, not a problem.
func TestVerifyFindsDamage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, err := Open(ctx, "dir://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(1000, 2)
	if _, _, err := r.Export(ctx, ref(t, "example.com/a:1"), img, AsIs); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	d0, _ := ls[0].Digest()
	d1, _ := ls[1].Digest()
	blob := func(h v1.Hash) string { return filepath.Join(dir, "blobs", "sha256", h.Hex) }
	if err := os.WriteFile(blob(d0), []byte("not the layer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(blob(d1) + ".sha256"); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(ctx)
	if err == nil || !strings.Contains(err.Error(), d0.Hex) {
		t.Errorf("verify of a damaged blob: %v", err)
	}
	if len(rep.Unfinished) != 1 || !strings.Contains(rep.Unfinished[0], d1.Hex) {
		t.Errorf("unfinished %v, want %s", rep.Unfinished, d1)
	}
	if !strings.Contains(err.Error(), "refs/example.com/a/1") {
		t.Errorf("the reference to the incomplete image is not reported: %v", err)
	}
	// A re-export mends what a killed writer left: the unfinished blob gets its sidecar.
	if err := os.Remove(blob(d0) + ".sha256"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Export(ctx, ref(t, "example.com/a:1"), img, AsIs); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.Verify(ctx); err != nil || len(rep.Unfinished) != 0 {
		t.Errorf("after re-export: %+v, %v", rep, err)
	}
}

// A blob whose stream does not hash to its name is not written.
func TestPutBlobRefusesWrongContent(t *testing.T) {
	ctx := context.Background()
	for kind, r := range remotes(t) {
		t.Run(kind, func(t *testing.T) {
			h, _, _ := v1.SHA256(strings.NewReader("right"))
			_, err := r.PutBlob(ctx, v1.Descriptor{Digest: h, Size: 5}, func() (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader([]byte("wrong"))), nil
			})
			if err == nil {
				t.Fatal("wrong content written")
			}
			if ok, _ := r.b.exists(ctx, blobKey(h)); ok {
				t.Error("the blob's name exists after a refused write")
			}
		})
	}
}

func TestParseLocation(t *testing.T) {
	for _, tt := range []struct {
		in, want, err string
	}{
		{"dir:///srv/images", "dir:///srv/images", ""},
		{"s3://bucket/docker-repo/?region=us-west-2", "s3://bucket/docker-repo?region=us-west-2", ""},
		{"s3://bucket?endpoint=http://127.0.0.1:9000", "s3://bucket?endpoint=http%3A%2F%2F127.0.0.1%3A9000", ""},
		{"s3://key:secret@bucket/x", "", "credentials"},
		{"s3://bucket/x?X-Amz-Signature=abc", "", "credentials"},
		{"dir://relative/path", "", "three slashes"},
		{"ftp://example.com/x", "", "scheme"},
		{"https://images.example.org/remote/", "https://images.example.org/remote", ""},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{"https://images.example.org/remote?X-Amz-Signature=abc", "", "credentials"},
		{"s3://bucket?endpoint=ftp://x", "", "endpoint"},
	} {
		loc, err := ParseLocation(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want an error about %s", tt.in, err, tt.err)
			}
			if err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "abc")) {
				t.Errorf("%s: the error shows the credentials: %v", tt.in, err)
			}
			continue
		}
		if err != nil || loc.String() != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.in, loc.String(), err, tt.want)
		}
	}
}

// Redact hides user information and a signed URL's parameters.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"s3://key:secret@bucket/x":                   "s3://***@bucket/x",
		"s3://bucket/x?X-Amz-Signature=abc&region=r": "s3://bucket/x?X-Amz-Signature=%2A%2A%2A&region=r",
		"dir:///srv/images":                          "dir:///srv/images",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%s) = %s, want %s", in, got, want)
		}
	}
}

// What a killed S3 writer left in tmp/ is counted by Verify and removed by a sweep once it is
// older than the age given (an export sweeps StaleAge-old ones); a young one is kept.
func TestSweepTemporaries(t *testing.T) {
	ctx := context.Background()
	r := remotes(t)["s3"]
	if err := r.b.put(ctx, "tmp/left-by-a-killed-writer", strings.NewReader("half"), 4); err != nil {
		t.Fatal(err)
	}
	if rep, err := r.Verify(ctx); err != nil || rep.Temporary != 1 {
		t.Fatalf("verify: %+v, %v; want 1 temporary", rep, err)
	}
	if n, err := r.b.sweep(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("a young temporary was swept: %d, %v", n, err)
	}
	if n, err := r.b.sweep(ctx, 0); err != nil || n != 1 {
		t.Errorf("sweep: %d, %v; want 1", n, err)
	}
	if rep, err := r.Verify(ctx); err != nil || rep.Temporary != 0 {
		t.Errorf("after the sweep: %+v, %v", rep, err)
	}
}

// A directory remote served by a web server is read over HTTP: an image by name and by digest
// comes back with its digest; an id prefix, which needs a listing, and an export are refused
// saying why.
func TestReadOverHTTP(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	w, err := Open(ctx, "dir://"+root)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(2000, 2)
	if _, _, err := w.Export(ctx, ref(t, "example.com/team/app:1"), img, AsIs); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.FileServer(http.Dir(root)))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	r, err := Open(ctx, srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	want := digestOf(t, img)
	for _, s := range []string{"example.com/team/app:1", "example.com/team/app@" + want.String()} {
		_, art, err := r.Import(ctx, s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if got := digestOf(t, art.(v1.Image)); got != want {
			t.Errorf("%s: %s, want %s", s, got, want)
		}
		if err := validate.Image(art.(v1.Image)); err != nil {
			t.Error(err)
		}
	}
	if _, err := r.Resolve(ctx, "sha256:"+want.Hex[:8]); err == nil || !strings.Contains(err.Error(), "cannot be listed") {
		t.Errorf("an id prefix over HTTP: %v", err)
	}
	if _, err := r.Resolve(ctx, "example.com/team/app:2"); !IsNotFound(err) {
		t.Errorf("a missing tag over HTTP: %v", err)
	}
	if _, _, err := r.Export(ctx, ref(t, "example.com/team/app:3"), img, AsIs); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("an export over HTTP: %v", err)
	}
}
