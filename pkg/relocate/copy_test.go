package relocate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/relocate/relocatetest"
)

// testOptions are Copy's options against the in-process registries.
func testOptions() []Option { return []Option{WithRegistry(registrytest.Options()...)} }

func push(t *testing.T, ref string, art remote.Taggable) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	switch a := art.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(r, a)
	case v1.Image:
		err = remote.Write(r, a)
	default:
		err = remote.Put(r, a)
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

// served returns the target's raw manifest and its digest.
func served(t *testing.T, r imageref.Ref) ([]byte, v1.Hash) {
	t.Helper()
	ref, err := pushRef(r)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	return d.Manifest, d.Digest
}

// rawImage is a manifest pushed as these exact bytes.
type rawImage struct {
	raw []byte
	mt  types.MediaType
}

func (r rawImage) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawImage) MediaType() (types.MediaType, error) { return r.mt, nil }

func TestCopyImage(t *testing.T) {
	src, dst := registrytest.Serve(t, nil), registrytest.Serve(t, nil)
	docker, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	oci := mutate.ConfigMediaType(mutate.MediaType(docker, types.OCIManifestSchema1), types.OCIConfigJSON)
	// An indented manifest: any copy that serializes it again changes its digest.
	m, _ := docker.Manifest()
	indented, _ := json.MarshalIndent(m, "", "    ")
	push(t, src+"/app/docker:raw", docker) // its blobs
	tests := []struct {
		name string
		art  remote.Taggable
	}{
		{"docker", docker},
		{"oci", oci},
		{"raw", rawImage{indented, types.DockerManifestSchema2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := push(t, src+"/app/"+tt.name+":1", tt.art)
			from := mustParse(t, src+"/app/"+tt.name+":1")
			to := mustFlat(t, dst+"/mirror", from)
			got, err := Copy(context.Background(), from, to, testOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("Copy returned %s, want %s", got, want)
			}
			raw, d := served(t, to)
			if d != want {
				t.Errorf("target serves %s, want %s", d, want)
			}
			if srcRaw, _ := tt.art.RawManifest(); !bytes.Equal(raw, srcRaw) {
				t.Error("the target's manifest differs from the source's")
			}
			checkBlobs(t, to)
		})
	}
}

// checkBlobs reads every blob of the image or index r names from its registry.
func checkBlobs(t *testing.T, r imageref.Ref) {
	t.Helper()
	ref, _ := pushRef(r)
	d, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []v1.Image
	if d.MediaType.IsIndex() {
		idx, _ := d.ImageIndex()
		im, _ := idx.IndexManifest()
		for _, c := range im.Manifests {
			img, err := idx.Image(c.Digest)
			if err != nil {
				t.Fatal(err)
			}
			imgs = append(imgs, img)
		}
	} else {
		img, _ := d.Image()
		imgs = append(imgs, img)
	}
	for _, img := range imgs {
		if _, err := img.RawConfigFile(); err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatalf("layer: %v", err)
			}
			rc.Close()
		}
	}
}

func TestCopyIndex(t *testing.T) {
	src, dst := registrytest.Serve(t, nil), registrytest.Serve(t, nil)
	idx, err := random.Index(256, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := push(t, src+"/multi/arch:v2", idx)
	im, _ := idx.IndexManifest()
	for _, in := range []string{src + "/multi/arch:v2", src + "/multi/arch@" + want.String(), src + "/multi/arch:v2@" + want.String()} {
		t.Run(in, func(t *testing.T) {
			from := mustParse(t, in)
			to := mustFlat(t, dst+"/mirror", from)
			got, err := Copy(context.Background(), from, to, testOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			if _, d := served(t, to); got != want || d != want {
				t.Errorf("Copy returned %s, target serves %s, want %s", got, d, want)
			}
			if to.Tag != "" {
				if _, d := served(t, imageref.Ref{Scheme: to.Scheme, Registry: to.Registry, Repository: to.Repository, Tag: to.Tag}); d != want {
					t.Errorf("tag %s serves %s, want %s", to.Tag, d, want)
				}
			}
			for _, c := range im.Manifests {
				if _, d := served(t, imageref.Ref{Scheme: to.Scheme, Registry: to.Registry, Repository: to.Repository, Digest: c.Digest.String()}); d != c.Digest {
					t.Errorf("child %s served as %s", c.Digest, d)
				}
			}
			checkBlobs(t, to)
		})
	}
}

// TestCopyMountsOnOneRegistry: copying within a registry asks to mount each blob from the
// source repository instead of uploading it. (The in-process registry keeps one blob store
// for all repositories; it is made to say the mirror lacks every blob.)
func TestCopyMountsOnOneRegistry(t *testing.T) {
	var mu sync.Mutex
	var mounts []string
	reg := registrytest.Serve(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Query().Get("mount") != "" {
				mu.Lock()
				mounts = append(mounts, r.URL.Query().Get("from"))
				mu.Unlock()
			}
			if r.Method == http.MethodHead && strings.HasPrefix(r.URL.Path, "/v2/mirror/") && strings.Contains(r.URL.Path, "/blobs/") {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	img, _ := random.Image(256, 2)
	push(t, reg+"/team/app:1", img)
	from := mustParse(t, reg+"/team/app:1")
	if _, err := Copy(context.Background(), from, mustFlat(t, reg+"/mirror", from), testOptions()...); err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 3 { // two layers and the config
		t.Fatalf("%d mount requests, want 3", len(mounts))
	}
	for _, f := range mounts {
		if f != "team/app" {
			t.Errorf("mount from %q, want team/app", f)
		}
	}
}

func TestCopyFailsWhenTargetChangesDigest(t *testing.T) {
	src, dst := registrytest.Serve(t, nil), registrytest.Serve(t, relocatetest.RewriteManifests)
	img, _ := random.Image(256, 1)
	idx, _ := random.Index(256, 1, 2)
	imgDigest := push(t, src+"/team/app:1", img)
	push(t, src+"/team/multi:1", idx)
	for _, in := range []string{src + "/team/app:1", src + "/team/app@" + imgDigest.String(), src + "/team/multi:1"} {
		t.Run(in, func(t *testing.T) {
			from := mustParse(t, in)
			to := mustFlat(t, dst+"/mirror", from)
			_, err := Copy(context.Background(), from, to, testOptions()...)
			if !errors.Is(err, ErrDigestChanged) {
				t.Fatalf("got %v, want ErrDigestChanged", err)
			}
			var de *DigestError
			if !errors.As(err, &de) || de.Image != dockerString(from) {
				t.Fatalf("got %#v, want a DigestError for %s", err, dockerString(from))
			}
			if !strings.Contains(err.Error(), in) {
				t.Errorf("%q does not name %s", err, in)
			}
			t.Log(err)
		})
	}
}

func TestCopyMissingSource(t *testing.T) {
	src, dst := registrytest.Serve(t, nil), registrytest.Serve(t, nil)
	from := mustParse(t, src+"/nothing/here:1")
	_, err := Copy(context.Background(), from, mustFlat(t, dst+"/m", from), testOptions()...)
	if err == nil || errors.Is(err, ErrDigestChanged) || !strings.Contains(err.Error(), src+"/nothing/here:1") {
		t.Fatalf("got %v, want a read error naming the image", err)
	}
}

// TestCopyChecksEveryManifestOfAnIndex: a target that keeps the index but rewrites the
// manifests it lists (pushed by digest) fails the copy too.
func TestCopyChecksEveryManifestOfAnIndex(t *testing.T) {
	src := registrytest.Serve(t, nil)
	dst := registrytest.Serve(t, func(h http.Handler) http.Handler {
		rw := relocatetest.RewriteManifests(h)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/sha256:") {
				rw.ServeHTTP(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	idx, _ := random.Index(256, 1, 2)
	push(t, src+"/team/multi:1", idx)
	from := mustParse(t, src+"/team/multi:1")
	_, err := Copy(context.Background(), from, mustFlat(t, dst+"/mirror", from), testOptions()...)
	var de *DigestError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a DigestError", err)
	}
	im, _ := idx.IndexManifest()
	if de.Want != im.Manifests[0].Digest && de.Want != im.Manifests[1].Digest {
		t.Errorf("the error is about %s, not a manifest of the index", de.Want)
	}
}
