package lazy

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// memDedup is a Dedup in memory.
type memDedup struct {
	mu        sync.Mutex
	layers    map[LayerKey]Blob
	manifests map[ManifestKey]Blob
}

func newMemDedup() *memDedup {
	return &memDedup{layers: map[LayerKey]Blob{}, manifests: map[ManifestKey]Blob{}}
}

func (m *memDedup) Layer(_ context.Context, k LayerKey) (Blob, bool, error) {
	k.Target = "" // one record a layer, whatever repository wants it, as in JetStream KV
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.layers[k]
	return b, ok, nil
}

func (m *memDedup) PutLayer(_ context.Context, k LayerKey, b Blob) error {
	k.Target = ""
	m.mu.Lock()
	defer m.mu.Unlock()
	m.layers[k] = b
	return nil
}

func (m *memDedup) Manifest(_ context.Context, k ManifestKey) (Blob, bool, error) {
	k.Target = ""
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.manifests[k]
	return b, ok, nil
}

func (m *memDedup) PutManifest(_ context.Context, k ManifestKey, b Blob) error {
	k.Target = ""
	m.mu.Lock()
	defer m.mu.Unlock()
	m.manifests[k] = b
	return nil
}

func push(t *testing.T, ref string, img v1.Image) name.Reference {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return r
}

func convertTo(t *testing.T, src name.Reference, target string, d Dedup, req Request) *Result {
	t.Helper()
	dst, err := name.ParseReference(target)
	if err != nil {
		t.Fatal(err)
	}
	if req.Converter == nil {
		req.Format = Estargz
		req.Converter, _ = New(Estargz, Options{})
	}
	req.Source, req.Target, req.Dedup, req.TempDir = src, dst, d, t.TempDir()
	res, err := Convert(context.Background(), req)
	if err != nil {
		t.Fatalf("converting %s: %v", src, err)
	}
	return res
}

// A second image sharing the first one's base converts only its own layer; the same image
// again is only tagged (the manifest cache); the converted image is a valid image whose
// layers carry the eStargz annotations.
func TestConvertDedup(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	base, _ := random.Image(4096, 2)
	top, _ := random.Layer(2048, types.DockerLayer)
	app, _ := mutate.AppendLayers(base, top)
	d := newMemDedup()

	r1 := convertTo(t, push(t, host+"/base:1", base), host+"/base:1-esgz", d, Request{})
	if r1.Converted != 2 || r1.Reused != 0 {
		t.Errorf("first image: converted %d, reused %d; want 2, 0", r1.Converted, r1.Reused)
	}
	r2 := convertTo(t, push(t, host+"/app:1", app), host+"/app:1-esgz", d, Request{})
	if r2.Converted != 1 || r2.Reused != 2 || r2.Layers != 3 {
		t.Errorf("second image: converted %d, reused %d of %d; want 1, 2 of 3", r2.Converted, r2.Reused, r2.Layers)
	}
	r3 := convertTo(t, push(t, host+"/app:1", app), host+"/app:again", d, Request{})
	if !r3.Cached || r3.Digest != r2.Digest {
		t.Errorf("third run: cached %v, digest %s; want the cached %s", r3.Cached, r3.Digest, r2.Digest)
	}
	out, err := remote.Image(mustRef(t, host+"/app:again"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(out); err != nil {
		t.Errorf("the converted image is not valid: %v", err)
	}
	m, _ := out.Manifest()
	for _, l := range m.Layers {
		if l.Annotations["containerd.io/snapshot/stargz/toc.digest"] == "" || l.MediaType != types.DockerLayer {
			t.Errorf("layer %s: %s %v", l.Digest, l.MediaType, l.Annotations)
		}
	}
}

// An index is converted per platform; with --referrer every converted manifest and the index
// carry a subject naming their original and the format's artifact type, and are OCI.
func TestConvertIndexReferrer(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, _ := random.Image(1024, 1)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	src := mustRef(t, host+"/multi:1")
	if err := remote.WriteIndex(src, idx); err != nil {
		t.Fatal(err)
	}
	c, _ := New(ZstdChunked, Options{})
	res := convertTo(t, src, host+"/multi:1-zc", nil, Request{Format: ZstdChunked, Converter: c, Referrer: true, Concurrency: 1})
	if res.MediaType != types.OCIImageIndex || len(res.Platforms) != 2 || res.Converted != 2 {
		t.Fatalf("result %s with %d platforms, %d converted", res.MediaType, len(res.Platforms), res.Converted)
	}
	got, err := remote.Index(mustRef(t, host+"/multi:1-zc"))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := got.IndexManifest()
	srcDigest, _ := idx.Digest()
	if im.Subject == nil || im.Subject.Digest != srcDigest || im.ArtifactType != ZstdChunkedArtifactType {
		t.Errorf("index subject %v, artifact type %q", im.Subject, im.ArtifactType)
	}
	srcIM, _ := idx.IndexManifest()
	for i, m := range im.Manifests {
		img, _ := got.Image(m.Digest)
		mf, _ := img.Manifest()
		if mf.Subject == nil || mf.Subject.Digest != srcIM.Manifests[i].Digest || mf.MediaType != types.OCIManifestSchema1 || m.Platform == nil {
			t.Errorf("platform %d: subject %v, %s, platform %v", i, mf.Subject, mf.MediaType, m.Platform)
		}
		if mf.Layers[0].MediaType != types.OCILayerZStd || mf.Layers[0].Annotations[ZstdChunkedManifestChecksum] == "" {
			t.Errorf("platform %d layer: %s %v", i, mf.Layers[0].MediaType, mf.Layers[0].Annotations)
		}
	}
	// --no-upload converts and pushes nothing.
	res = convertTo(t, src, host+"/nothing:1", nil, Request{Format: ZstdChunked, Converter: c, NoUpload: true})
	if len(res.Manifest) == 0 {
		t.Error("no manifest with --no-upload")
	}
	if _, err := remote.Head(mustRef(t, host+"/nothing:1")); err == nil {
		t.Error("--no-upload pushed the image")
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A converted image whose layer blob was deleted from the target is not taken from the
// manifest cache: the layer is converted again.
func TestConvertCacheChecksBlobs(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, _ := random.Image(1024, 1)
	d := newMemDedup()
	src := push(t, host+"/a:1", img)
	first := convertTo(t, src, host+"/a:esgz", d, Request{})
	var gone LayerKey
	for k := range d.layers {
		gone = k
	}
	d.layers[gone] = Blob{Digest: "sha256:" + strings.Repeat("0", 64), Size: 1, DiffID: "sha256:" + strings.Repeat("0", 64), Repository: d.layers[gone].Repository}
	// The in-memory registry keeps blobs for ever, so the cache entry is made to name a
	// blob that is not there: the manifest it names then lacks it.
	m := mustManifestWithBlob(t, host, first, "sha256:"+strings.Repeat("0", 64))
	for k, b := range d.manifests {
		b.Digest = m
		d.manifests[k] = b
	}
	again := convertTo(t, src, host+"/a:esgz2", d, Request{})
	if again.Cached || again.Converted != 1 {
		t.Errorf("cached %v, converted %d; want the layer converted again", again.Cached, again.Converted)
	}
}

// mustManifestWithBlob pushes a copy of the converted manifest whose first layer names blob
// (absent from the registry) and returns its digest.
func mustManifestWithBlob(t *testing.T, host string, r *Result, blob string) string {
	t.Helper()
	var m v1.Manifest
	if err := json.Unmarshal(r.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	m.Layers[0].Digest, _ = v1.NewHash(blob)
	raw, _ := json.Marshal(m)
	h, _, _ := v1.SHA256(bytes.NewReader(raw))
	if err := remote.Put(mustRef(t, host+"/a@"+h.String()), rawManifest{raw, m.MediaType}); err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// With a registry that has the referrers API (distribution 2.8, the e2e registry, has only the
// tag fallback), --referrer's converted manifests are listed by GET /v2/<repo>/referrers/<digest>
// for the original, for an image and for each platform of an index, and no fallback tag is
// written.
func TestConvertReferrersAPI(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(true)))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c, _ := New(Estargz, Options{})

	img, _ := random.Image(1024, 2)
	single := mustRef(t, host+"/one:1")
	if err := remote.Write(single, img); err != nil {
		t.Fatal(err)
	}
	res := convertTo(t, single, host+"/one:1-esgz", nil, Request{Format: Estargz, Converter: c, Referrer: true, Concurrency: 1})
	imgDigest, _ := img.Digest()
	assertReferrer(t, host+"/one", imgDigest, res.Digest, EstargzArtifactType)

	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		pi, _ := random.Image(1024, 1)
		adds = append(adds, mutate.IndexAddendum{Add: pi, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	multi := mustRef(t, host+"/multi:1")
	if err := remote.WriteIndex(multi, idx); err != nil {
		t.Fatal(err)
	}
	res = convertTo(t, multi, host+"/multi:1-esgz", nil, Request{Format: Estargz, Converter: c, Referrer: true, Concurrency: 2})
	idxDigest, _ := idx.Digest()
	assertReferrer(t, host+"/multi", idxDigest, res.Digest, EstargzArtifactType)
	srcIM, _ := idx.IndexManifest()
	got, err := remote.Index(mustRef(t, host+"/multi:1-esgz"))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := got.IndexManifest()
	for i, m := range im.Manifests {
		assertReferrer(t, host+"/multi", srcIM.Manifests[i].Digest, m.Digest, EstargzArtifactType)
	}
	tags, err := remote.List(mustRepo(t, host+"/multi"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if strings.HasPrefix(tag, "sha256-") {
			t.Errorf("fallback tag %s written although the registry has the referrers API", tag)
		}
	}
}

// assertReferrer checks that the referrers API of repo lists want for subject, and that want
// itself carries artifactType. (go-containerregistry's registry fills a listing's artifactType
// from the config's media type only, as an early draft of the spec did, so the manifest is
// read for it.)
func assertReferrer(t *testing.T, repo string, subject, want v1.Hash, artifactType string) {
	t.Helper()
	refs, err := remote.Referrers(mustRepo(t, repo).Digest(subject.String()))
	if err != nil {
		t.Fatalf("referrers of %s: %v", subject, err)
	}
	im, _ := refs.IndexManifest()
	for _, m := range im.Manifests {
		if m.Digest != want {
			continue
		}
		d, err := remote.Get(mustRepo(t, repo).Digest(want.String()))
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			ArtifactType string         `json:"artifactType"`
			Subject      *v1.Descriptor `json:"subject"`
		}
		if err := json.Unmarshal(d.Manifest, &body); err != nil {
			t.Fatal(err)
		}
		if body.ArtifactType != artifactType || body.Subject == nil || body.Subject.Digest != subject {
			t.Errorf("referrer %s of %s: artifactType %q, subject %v; want %q and %s", want, subject, body.ArtifactType, body.Subject, artifactType, subject)
		}
		return
	}
	t.Errorf("the referrers API lists %d manifest(s) for %s, not the converted %s: %+v", len(im.Manifests), subject, want, im.Manifests)
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
