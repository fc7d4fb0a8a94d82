package e2e

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/relocate/relocatetest"
)

// relocated is one image of the relocation tests: where it is in the source registry and
// the name duffle gives it under a prefix.
type relocated struct {
	ref        string // as given to flatbed: http://SRC/repository[:tag][@digest]
	repository string
	reference  string // ":tag" or "@digest"
	digest     string // of the source's manifest or index, sha256:…
}

// duffleName is the relocated name by duffle's rule, computed here from its definition:
// PREFIX/<path with '/' → '-'>-<md5 hex of registry/path>, then the tag or digest.
func (r relocated) duffleName(srcHost, prefix string) string {
	sum := md5.Sum([]byte(srcHost + "/" + r.repository))
	return prefix + "/" + strings.ReplaceAll(r.repository, "/", "-") + "-" + hex.EncodeToString(sum[:]) + r.reference
}

// rawDigest is the sha256 of what skopeo inspect --raw reads of ref: the manifest's digest
// as the registry serves it.
func rawDigest(t *testing.T, ref string) string {
	t.Helper()
	h := sha256.Sum256(harness.SkopeoInspectRaw(t, ref))
	return "sha256:" + hex.EncodeToString(h[:])
}

// pushRelocationImages pushes a multi-arch index (linux/amd64 and linux/arm64), a Docker v2
// image and an image wished by digest to the registry at host.
func pushRelocationImages(t *testing.T, host string) []relocated {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(2048, 2)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	app, _ := random.Image(4096, 3) // a Docker v2 schema 2 manifest
	base, _ := random.Image(1024, 1)
	pin := func(art remote.Taggable) string {
		raw, err := art.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(raw)
		return "sha256:" + hex.EncodeToString(h[:])
	}
	images := []struct {
		art        remote.Taggable
		repository string
		tag        string
		byDigest   bool
	}{
		{idx, "team/multi", "1", false},
		{app, "team/app", "2.0", false},
		{base, "team/base", "pinned", true},
	}
	var out []relocated
	for _, im := range images {
		ref, err := name.ParseReference(host+"/"+im.repository+":"+im.tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		switch a := im.art.(type) {
		case v1.ImageIndex:
			err = remote.WriteIndex(ref, a)
		case v1.Image:
			err = remote.Write(ref, a)
		}
		if err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
		r := relocated{repository: im.repository, digest: pin(im.art)}
		r.reference = ":" + im.tag
		if im.byDigest {
			r.reference = "@" + r.digest
		}
		r.ref = "http://" + host + "/" + im.repository + r.reference
		out = append(out, r)
	}
	if mt, _ := app.MediaType(); mt != types.DockerManifestSchema2 {
		t.Fatalf("the app image is %s, want a Docker v2 schema 2 manifest", mt)
	}
	return out
}

// Relocating a multi-arch index, a Docker v2 image and a digest-pinned reference between two
// real registries keeps every digest (the index's and each of its manifests', as skopeo
// reads them), names each as duffle does, and writes the mapping file.
func TestRelocateBetweenRegistries(t *testing.T) {
	src, dst := harness.StartRegistry(t), harness.StartRegistry(t)
	images := pushRelocationImages(t, src.Host)
	mapping := filepath.Join(t.TempDir(), "mapping.json")
	args := []string{"relocate", "--repository-prefix", dst.URL() + "/mirror", "--mapping", mapping,
		"--state-dir", t.TempDir(), "--store-root", t.TempDir()}
	for _, im := range images {
		args = append(args, im.ref)
	}
	stdout, _ := runFlatbed(t, 0, args...)
	t.Logf("relocate:\n%s", stdout)
	var m map[string]string
	b, err := os.ReadFile(mapping)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("mapping file %s: %v", b, err)
	}
	if len(m) != len(images) {
		t.Errorf("mapping has %d images, want %d: %s", len(m), len(images), b)
	}
	indexes := 0
	for _, im := range images {
		target := im.duffleName(src.Host, dst.Host+"/mirror")
		want := target
		if !strings.Contains(im.reference, "@") {
			want += "@" + im.digest
		}
		if m[im.ref] != want {
			t.Errorf("mapping[%s] = %q, want %q (duffle's name, with the digest)", im.ref, m[im.ref], want)
		}
		srcDigest := rawDigest(t, src.Host+"/"+im.repository+im.reference)
		if srcDigest != im.digest {
			t.Fatalf("the source serves %s as %s, pushed as %s", im.ref, srcDigest, im.digest)
		}
		if got := rawDigest(t, target); got != srcDigest {
			t.Errorf("%s at the target is %s, at the source %s", target, got, srcDigest)
		}
		var index v1.IndexManifest
		if err := json.Unmarshal(harness.SkopeoInspectRaw(t, target), &index); err == nil && len(index.Manifests) > 0 {
			repo := target[:strings.LastIndex(target, ":")] // the index is wished by tag
			for _, child := range index.Manifests {
				if got := rawDigest(t, repo+"@"+child.Digest.String()); got != child.Digest.String() {
					t.Errorf("manifest %s of the index %s is %s at the target", child.Digest, target, got)
				}
			}
			if len(index.Manifests) != 2 {
				t.Errorf("the relocated index lists %d manifests, want both platforms", len(index.Manifests))
			}
			indexes++
		}
	}
	if indexes != 1 {
		t.Errorf("%d relocated indexes, want the multi-arch image's", indexes)
	}
}

// A CNAB bundle and an OCI image layout (a thick bundle) relocate with the source registry
// stopped: the layout holds every blob, and the digests at the target are the source's.
func TestRelocateOfflineFromLayout(t *testing.T) {
	src, dst := harness.StartRegistry(t), harness.StartRegistry(t)
	images := pushRelocationImages(t, src.Host)
	dir := filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	bundle := map[string]any{"schemaVersion": "v1.0.0", "name": "relocation-e2e", "version": "0.1.0",
		"invocationImages": []any{map[string]any{"imageType": "docker", "image": src.Host + "/" + images[1].repository + images[1].reference}},
		"images":           map[string]any{},
	}
	for i, im := range images {
		written := src.Host + "/" + im.repository + im.reference
		ref, err := name.ParseReference(written, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(ref)
		if err != nil {
			t.Fatal(err)
		}
		opt := layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": written})
		if desc.MediaType.IsIndex() {
			idx, _ := desc.ImageIndex()
			err = lp.AppendIndex(idx, opt)
		} else {
			img, _ := desc.Image()
			err = lp.AppendImage(img, opt)
		}
		if err != nil {
			t.Fatal(err)
		}
		bundle["images"].(map[string]any)[[]string{"multi", "app", "base"}[i]] = map[string]any{"imageType": "oci", "image": written}
	}
	bundlePath := filepath.Join(t.TempDir(), "bundle.json")
	b, _ := json.Marshal(bundle)
	if err := os.WriteFile(bundlePath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	src.Stop()

	mapping := filepath.Join(t.TempDir(), "mapping.json")
	stdout, _ := runFlatbed(t, 0, "relocate", "--repository-prefix", dst.URL()+"/offline", "--from-layout", dir, "--mapping", mapping)
	t.Logf("relocate --from-layout:\n%s", stdout)
	var m map[string]string
	if b, err := os.ReadFile(mapping); err != nil || json.Unmarshal(b, &m) != nil || len(m) != len(images) {
		t.Fatalf("mapping %s (%v), want %d images", b, err, len(images))
	}
	for _, im := range images {
		target := im.duffleName(src.Host, dst.Host+"/offline")
		if got := rawDigest(t, target); got != im.digest {
			t.Errorf("%s: %s at the target, %s at the source", target, got, im.digest)
		}
	}

	out := filepath.Join(t.TempDir(), "relocated-bundle.json")
	stdout, _ = runFlatbed(t, 0, "relocate", "--repository-prefix", dst.URL()+"/bundled", "--bundle", bundlePath, "--output-bundle", out, "--from-layout", dir)
	t.Logf("relocate --bundle:\n%s", stdout)
	var got struct {
		InvocationImages []struct{ Image, OriginalImage, ContentDigest string } `json:"invocationImages"`
		Images           map[string]struct {
			Image, OriginalImage, ContentDigest string
		} `json:"images"`
	}
	if b, err := os.ReadFile(out); err != nil || json.Unmarshal(b, &got) != nil {
		t.Fatalf("relocated bundle %s: %v", b, err)
	}
	for i, key := range []string{"multi", "app", "base"} {
		im, e := images[i], got.Images[key]
		target := im.duffleName(src.Host, dst.Host+"/bundled")
		if e.Image != target || e.OriginalImage != src.Host+"/"+im.repository+im.reference || e.ContentDigest != im.digest {
			t.Errorf("bundle image %s = %+v, want image %s, its original and digest %s", key, e, target, im.digest)
		}
		if got := rawDigest(t, target); got != im.digest {
			t.Errorf("%s: %s at the target, %s at the source", target, got, im.digest)
		}
	}
	if len(got.InvocationImages) != 1 || got.InvocationImages[0].ContentDigest != images[1].digest {
		t.Errorf("invocation images %+v, want the app relocated with digest %s", got.InvocationImages, images[1].digest)
	}
}

// A target that rewrites what is pushed to it (a proxy re-serializing every manifest before
// the real registry stores it) changes the digest: the run fails, naming the image.
func TestRelocateFailsWhenTheTargetChangesADigest(t *testing.T) {
	src, dst := harness.StartRegistry(t), harness.StartRegistry(t)
	images := pushRelocationImages(t, src.Host)
	u, _ := url.Parse(dst.URL())
	proxy := httptest.NewServer(relocatetest.RewriteManifests(httputil.NewSingleHostReverseProxy(u)))
	t.Cleanup(proxy.Close)
	stdout, stderr := runFlatbed(t, 1, "relocate", "--repository-prefix", proxy.URL+"/mirror", "--max-attempts", "2",
		"--state-dir", t.TempDir(), "--store-root", t.TempDir(), images[1].ref)
	t.Logf("relocate:\n%s%s", stdout, lastLines(stderr, 3))
	if !strings.Contains(stdout, "FAILED") || !strings.Contains(stdout, images[1].ref) || !strings.Contains(stdout, "digest not preserved") {
		t.Errorf("stdout does not name %s as the image whose digest changed:\n%s", images[1].ref, stdout)
	}
}
