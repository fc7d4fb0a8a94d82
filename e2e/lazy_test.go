package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/lazy"
	"flatbed.dev/pkg/store"
	"flatbed.dev/pkg/treecmp"
)

// lazyImages pushes to the registry at host: lazy/base:1, the corpus' basic image (three
// gzip layers, Docker media types); lazy/app:1, that base with the three zstd layers of the
// whiteouts corpus on top (OCI); lazy/twin:1, the same with the gzip twins of those layers,
// which umoci can read. It returns the base's layer digests.
func lazyImages(t *testing.T, host string) []string {
	t.Helper()
	byName := map[string]v1.Image{}
	for _, n := range imagegen.Corpus() {
		byName[n.Name] = n.Image
	}
	base := byName[imagegen.BasicName]
	top := func(name string) []v1.Layer {
		ls, err := byName[name].Layers()
		if err != nil {
			t.Fatal(err)
		}
		return ls
	}
	// The base's layers again, as OCI layers of an OCI image (umoci refuses Docker media types
	// in an OCI manifest): the same blobs, so the same chain IDs.
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var adds []mutate.Addendum
	for _, l := range top(imagegen.BasicName) {
		adds = append(adds, mutate.Addendum{Layer: l, MediaType: types.OCILayer})
	}
	oci, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), adds...)
	if err != nil {
		t.Fatal(err)
	}
	if oci, err = mutate.Config(oci, cf.Config); err != nil {
		t.Fatal(err)
	}
	app, err := mutate.AppendLayers(oci, top(imagegen.WhiteoutsZstd)...)
	if err != nil {
		t.Fatal(err)
	}
	twin, err := mutate.AppendLayers(oci, top(imagegen.WhiteoutsName)...)
	if err != nil {
		t.Fatal(err)
	}
	for repo, img := range map[string]v1.Image{"lazy/base:1": base, "lazy/app:1": app, "lazy/twin:1": twin} {
		if err := remote.Write(lazyRef(t, host+"/"+repo), img); err != nil {
			t.Fatalf("pushing %s: %v", repo, err)
		}
	}
	m, err := base.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var digests []string
	for _, l := range m.Layers {
		digests = append(digests, l.Digest.String())
	}
	if mt, _ := app.Manifest(); mt.Layers[3].MediaType != types.OCILayerZStd || mt.Layers[0].MediaType != types.OCILayer {
		t.Fatalf("the app image's layers are %s and %s, want gzip below zstd", mt.Layers[0].MediaType, mt.Layers[3].MediaType)
	}
	return digests
}

func lazyRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// uploadsTo counts, among reqs, the blobs uploaded to repo (a PUT ending an upload) and the
// blobs mounted into it from another repository (a POST with mount= answered 201).
func uploadsTo(reqs []harness.Request, repo string) (puts, mounts int) {
	prefix := "/v2/" + repo + "/blobs/uploads/"
	for _, q := range reqs {
		switch {
		case q.Method == http.MethodPut && strings.HasPrefix(q.URI, prefix) && q.Status == http.StatusCreated:
			puts++
		case q.Method == http.MethodPost && strings.HasPrefix(q.URI, prefix) && strings.Contains(q.URI, "mount=") && q.Status == http.StatusCreated:
			mounts++
		}
	}
	return puts, mounts
}

// manifestOf reads the manifest ref names.
func manifestOf(t *testing.T, ref string) (*v1.Manifest, v1.Image) {
	t.Helper()
	img, err := remote.Image(lazyRef(t, ref))
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m, img
}

// blobFile downloads a layer of img to a file and returns it as a section reader.
func blobFile(t *testing.T, img v1.Image, d v1.Hash) *io.SectionReader {
	t.Helper()
	l, err := img.LayerByDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	n, err := io.Copy(f, rc)
	if err != nil {
		t.Fatal(err)
	}
	return io.NewSectionReader(f, 0, n)
}

// estargzFiles are the entries eStargz adds to a layer's tree: its TOC and prefetch landmarks.
func estargzFiles(rel string) bool {
	return rel == estargz.TOCTarName || rel == estargz.PrefetchLandmark || rel == estargz.NoPrefetchLandmark
}

// flatbedTree converts ref (host:port/repo:tag, plain http) with flatbed's own pipeline into a
// fresh store and walks its flat tree, the flattener's Singularity files and eStargz's own
// entries left out: flatbed's extractor reading the lazy formats.
func flatbedTree(t *testing.T, ref string) treecmp.Tree {
	t.Helper()
	storeRoot := t.TempDir()
	runFlatbed(t, 0, "convert-single-image", "-i", "http://"+ref, "lazy.e2e.local", "--store-root", storeRoot, "--state-dir", t.TempDir())
	public := store.New(filepath.Join(storeRoot, "lazy.e2e.local")).PublicPath(ref)
	tr, err := treecmp.Walk(public+"/", func(rel string) bool { return notSingularity(rel) || estargzFiles(rel) })
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	return tr
}

// referrersByTag reads the referrers tag-schema fallback of digest in repo (distribution 2.8
// has no referrers API): the OCI index tagged sha256-<hex>.
func referrersByTag(t *testing.T, host, repo, digest string) v1.IndexManifest {
	t.Helper()
	raw := harness.SkopeoInspectRaw(t, host+"/"+repo+":"+strings.Replace(digest, ":", "-", 1))
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatalf("the referrers tag of %s: %v\n%s", digest, err, raw)
	}
	return idx
}

func listsReferrer(idx v1.IndexManifest, digest, artifactType string) bool {
	for _, m := range idx.Manifests {
		if m.Digest.String() == digest && m.ArtifactType == artifactType {
			return true
		}
	}
	return false
}

// convertSharingBase converts lazy/base:1 then lazy/app:1 to eStargz (tag esgz) with run,
// and checks from the registry's access log that the second conversion uploads only the app's
// own layers (and config), mounts the base's from the first conversion and reads none of the
// base's source blobs: they were not converted again.
func convertSharingBase(t *testing.T, reg *harness.Registry, baseLayers []string, run func(repo, in, out string, more ...string) string) {
	t.Helper()
	before := len(reg.RequestLog(t))
	stdout := run("lazy/base", "1", "esgz")
	if !strings.Contains(stdout, "converted") || !strings.Contains(stdout, reg.Host+"/lazy/base:esgz@sha256:") {
		t.Fatalf("flatbed lazy said:\n%s", stdout)
	}
	if puts, _ := uploadsTo(reg.RequestLog(t)[before:], "lazy/base"); puts != 4 {
		t.Errorf("converting the base uploaded %d blobs, want its 3 layers and its config", puts)
	}
	before = len(reg.RequestLog(t))
	getsBefore := reg.BlobGETsOf(baseLayers...)
	stdout = run("lazy/app", "1", "esgz")
	t.Logf("lazy:\n%s", stdout)
	puts, mounts := uploadsTo(reg.RequestLog(t)[before:], "lazy/app")
	if puts != 4 || mounts != 3 {
		t.Errorf("converting the app uploaded %d blobs and mounted %d; want its 3 own layers and config uploaded, the base's 3 mounted", puts, mounts)
	}
	if got := reg.BlobGETsOf(baseLayers...) - getsBefore; got != 0 {
		t.Errorf("the app's conversion read the base's source layers %d times: they were converted again", got)
	}
}

// A multi-layer image of gzip and zstd layers converted to eStargz by `flatbed lazy` against
// the real registry unpacks with umoci to the tree of the original, every layer passes the
// estargz library's TOC and chunk verification; converting a second image that shares the
// base converts only its own layers (the base's are mounted from the first conversion: no
// source blob of theirs is read, no converted blob of theirs uploaded); a converted blob
// deleted from the target is converted again on the next run, not referenced dangling.
func TestLazyEstargz(t *testing.T) {
	reg := harness.StartRegistry(t)
	baseLayers := lazyImages(t, reg.Host)
	state, store := t.TempDir(), t.TempDir()
	lazyCLI := func(repo, in, out string, more ...string) string {
		args := append([]string{"lazy", "-r", reg.Host + "/" + repo, "-i", in, "-o", out, "--plain", "--state-dir", state, "--store-root", store}, more...)
		stdout, _ := runFlatbed(t, 0, args...)
		return stdout
	}

	// --no-upload --dump-manifest converts in the process and prints the manifest, pushing
	// nothing.
	before := len(reg.RequestLog(t))
	stdout := lazyCLI("lazy/base", "1", "dry", "--no-upload", "--dump-manifest")
	var dumped v1.Manifest
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &dumped); err != nil || len(dumped.Layers) != 3 || dumped.Layers[0].Annotations[estargz.TOCJSONDigestAnnotation] == "" {
		t.Errorf("--dump-manifest printed %q (%v)", stdout, err)
	}
	if puts, mounts := uploadsTo(reg.RequestLog(t)[before:], "lazy/base"); puts+mounts != 0 {
		t.Errorf("--no-upload uploaded %d blobs and mounted %d", puts, mounts)
	}

	convertSharingBase(t, reg, baseLayers, lazyCLI)

	// Every layer passes eStargz verification, and carries the TOC annotations.
	m, img := manifestOf(t, reg.Host+"/lazy/app:esgz")
	if len(m.Layers) != 6 {
		t.Fatalf("the converted app has %d layers, want 6", len(m.Layers))
	}
	for _, l := range m.Layers {
		if l.MediaType != types.DockerLayer {
			t.Errorf("layer %s is %s, want Docker's gzip layer (no --oci)", l.Digest, l.MediaType)
		}
		toc := l.Annotations[estargz.TOCJSONDigestAnnotation]
		if _, err := lazy.VerifyEstargz(blobFile(t, img, l.Digest), toc); err != nil {
			t.Errorf("layer %s: %v", l.Digest, err)
		}
	}

	// umoci unpacks the converted image to the original's tree (the gzip twin stands in for
	// the zstd layers umoci cannot read), the eStargz TOC and landmarks left out.
	want := harness.ReferenceTree(t, reg.Host+"/lazy/twin:1")
	root := harness.UmociUnpack(t, reg.Host+"/lazy/app:esgz")
	got, err := treecmp.Walk(root, estargzFiles)
	if err != nil {
		t.Fatal(err)
	}
	if d := treecmp.Diff(want, got); len(d) > 0 {
		t.Errorf("the eStargz image unpacks to another tree than the original:\n%s", strings.Join(d, "\n"))
	}
	if len(got) < 10 {
		t.Errorf("the unpacked tree has %d entries", len(got))
	}
	if d := treecmp.Diff(want, flatbedTree(t, reg.Host+"/lazy/app:esgz")); len(d) > 0 {
		t.Errorf("flatbed's extractor unpacks the eStargz image to another tree than the original:\n%s", strings.Join(d, "\n"))
	}

	// Delete one converted blob of the base from its repository: the next run does not tag a
	// manifest that names a missing blob; it brings that one layer back, mounted from lazy/app
	// (which the KV record names since the app's conversion mounted it there).
	deleteConvertedLayer(t, reg, "lazy/base", "esgz", 1)
	before = len(reg.RequestLog(t))
	lazyCLI("lazy/base", "1", "esgz-again")
	if puts, mounts := uploadsTo(reg.RequestLog(t)[before:], "lazy/base"); puts != 0 || mounts != 1 {
		t.Errorf("after deleting a converted blob the next run uploaded %d blobs and mounted %d, want that layer alone mounted", puts, mounts)
	}
	harness.CopyToOCILayout(t, reg.Host+"/lazy/base:esgz-again") // reads every blob: none is missing
}

// zstd:chunked: every converted layer carries containers/storage's TOC annotations and
// passes their check, podman pulls the image from the loopback registry, and with --referrer
// the registry's referrers tag fallback (distribution 2.8 has no referrers API) lists the
// converted manifest for the original, for a single image and for an index and each of its
// platforms.
func TestLazyZstdChunkedReferrers(t *testing.T) {
	reg := harness.StartRegistry(t)
	lazyImages(t, reg.Host)
	state, store := t.TempDir(), t.TempDir()
	run := func(repo, in, out string, more ...string) {
		args := append([]string{"lazy", "-r", reg.Host + "/" + repo, "-i", in, "-o", out, "--plain", "--state-dir", state, "--store-root", store}, more...)
		runFlatbed(t, 0, args...)
	}
	run("lazy/app", "1", "zc", "--format", "zstd-chunked", "--referrer")
	m, img := manifestOf(t, reg.Host+"/lazy/app:zc")
	if m.MediaType != types.OCIManifestSchema1 || m.ArtifactType != lazy.ZstdChunkedArtifactType || m.Subject == nil {
		t.Fatalf("converted manifest: %s, artifactType %q, subject %v", m.MediaType, m.ArtifactType, m.Subject)
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayerZStd {
			t.Errorf("layer %s is %s", l.Digest, l.MediaType)
		}
		for _, k := range []string{lazy.ZstdChunkedManifestChecksum, lazy.ZstdChunkedManifestPosition, lazy.ZstdChunkedTarSplitPosition} {
			if l.Annotations[k] == "" {
				t.Errorf("layer %s lacks %s", l.Digest, k)
			}
		}
		if _, err := lazy.VerifyZstdChunked(blobFile(t, img, l.Digest), l.Annotations); err != nil {
			t.Errorf("layer %s: %v", l.Digest, err)
		}
	}
	podman := requirePodman(t)
	tmp, err := os.MkdirTemp("", "pm") // podman wants a runroot under 50 characters
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	out, err := runCmd(podman, "--root", filepath.Join(tmp, "graph"), "--runroot", filepath.Join(tmp, "run"), "--storage-driver", "vfs",
		"pull", "--tls-verify=false", reg.Host+"/lazy/app:zc")
	if err != nil {
		t.Fatalf("podman pull of the zstd:chunked image: %v\n%s", err, out)
	}

	// flatbed's own extractor reads the zstd:chunked image to the original's tree.
	if d := treecmp.Diff(harness.ReferenceTree(t, reg.Host+"/lazy/twin:1"), flatbedTree(t, reg.Host+"/lazy/app:zc")); len(d) > 0 {
		t.Errorf("flatbed's extractor unpacks the zstd:chunked image to another tree than the original:\n%s", strings.Join(d, "\n"))
	}

	// The referrer: the original's fallback tag lists the converted manifest.
	srcDigest := digestOf(t, reg.Host+"/lazy/app:1")
	if m.Subject.Digest.String() != srcDigest {
		t.Errorf("subject %s, want the original %s", m.Subject.Digest, srcDigest)
	}
	converted := digestOf(t, reg.Host+"/lazy/app:zc")
	if idx := referrersByTag(t, reg.Host, "lazy/app", srcDigest); !listsReferrer(idx, converted, lazy.ZstdChunkedArtifactType) {
		t.Errorf("the referrers of %s do not list the converted %s: %+v", srcDigest, converted, idx)
	}

	// An index: the converted index refers to the original index, each converted manifest to
	// its original platform manifest.
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(2048, 2)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	if err := remote.WriteIndex(lazyRef(t, reg.Host+"/lazy/multi:1"), idx); err != nil {
		t.Fatal(err)
	}
	run("lazy/multi", "1", "esgz", "--referrer", "--concurrency-limit", "1")
	srcIdx, _ := idx.IndexManifest()
	got, err := remote.Index(lazyRef(t, reg.Host+"/lazy/multi:esgz"))
	if err != nil {
		t.Fatal(err)
	}
	gotIdx, _ := got.IndexManifest()
	gotDigest, _ := got.Digest()
	if refs := referrersByTag(t, reg.Host, "lazy/multi", digestOf(t, reg.Host+"/lazy/multi:1")); !listsReferrer(refs, gotDigest.String(), lazy.EstargzArtifactType) {
		t.Errorf("the index's referrers do not list the converted index %s: %+v", gotDigest, refs)
	}
	if len(gotIdx.Manifests) != 2 {
		t.Fatalf("the converted index lists %d manifests", len(gotIdx.Manifests))
	}
	for i, cm := range gotIdx.Manifests {
		orig := srcIdx.Manifests[i]
		if cm.Platform == nil || cm.Platform.Architecture != orig.Platform.Architecture {
			t.Errorf("manifest %d: platform %v, want %v", i, cm.Platform, orig.Platform)
		}
		if refs := referrersByTag(t, reg.Host, "lazy/multi", orig.Digest.String()); !listsReferrer(refs, cm.Digest.String(), lazy.EstargzArtifactType) {
			t.Errorf("the referrers of platform %s do not list its converted manifest %s: %+v", orig.Platform, cm.Digest, refs)
		}
	}
}

// digestOf is the sha256 of the manifest ref names as the registry serves it.
func digestOf(t *testing.T, ref string) string {
	t.Helper()
	h := sha256.Sum256(harness.SkopeoInspectRaw(t, ref))
	return "sha256:" + hex.EncodeToString(h[:])
}

// requirePodman is podman's path; the tests need it (scripts/install-test-deps.sh installs it).
func requirePodman(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("podman")
	if err != nil {
		t.Fatal("podman is not installed: scripts/install-test-deps.sh installs it")
	}
	return p
}

// runCmd runs a command for at most two minutes and returns its combined output.
func runCmd(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return exec.CommandContext(ctx, name, args...).CombinedOutput()
}

// With overlaybd's MySQL tables in a real MariaDB as the dedup store (--db-type mysql), and a
// new NATS state for every run (so nothing is remembered in JetStream KV), the second image
// sharing the base still converts only its own layers; the tables hold a row per layer and
// repository, and one per converted image; a converted blob deleted from the target is
// converted again.
func TestLazyMariaDB(t *testing.T) {
	reg := harness.StartRegistry(t)
	db := harness.StartMariaDB(t)
	baseLayers := lazyImages(t, reg.Host)
	run := func(repo, in, out string, more ...string) string {
		args := append([]string{"lazy", "-r", reg.Host + "/" + repo, "-i", in, "-o", out, "--plain", "--db-type", "mysql", "--db-str", db.DSN(),
			"--state-dir", t.TempDir(), "--store-root", t.TempDir()}, more...)
		stdout, _ := runFlatbed(t, 0, args...)
		return stdout
	}
	convertSharingBase(t, reg, baseLayers, run)
	if got := db.Query(t, "SELECT COUNT(*) FROM overlaybd_layers WHERE format = 'estargz' AND host = '"+reg.Host+"'"); got != "9" {
		t.Errorf("overlaybd_layers has %s rows, want 9 (the base's 3 layers in lazy/base and lazy/app, the app's own 3)", got)
	}
	if got := db.Query(t, "SELECT repo FROM overlaybd_manifests ORDER BY repo"); got != "lazy/app\nlazy/base" {
		t.Errorf("overlaybd_manifests repositories: %q", got)
	}
	deleteConvertedLayer(t, reg, "lazy/base", "esgz", 1)
	before := len(reg.RequestLog(t))
	run("lazy/base", "1", "esgz-again")
	if puts, _ := uploadsTo(reg.RequestLog(t)[before:], "lazy/base"); puts != 1 {
		t.Errorf("after deleting a converted blob the next run uploaded %d blobs, want that layer alone", puts)
	}
	harness.CopyToOCILayout(t, reg.Host+"/lazy/base:esgz-again")
}

// deleteConvertedLayer deletes layer i of repo:tag's manifest from the registry's storage.
func deleteConvertedLayer(t *testing.T, reg *harness.Registry, repo, tag string, i int) {
	t.Helper()
	m, _ := manifestOf(t, reg.Host+"/"+repo+":"+tag)
	gone := m.Layers[i].Digest.String()
	req, _ := http.NewRequest(http.MethodDelete, reg.URL()+"/v2/"+repo+"/blobs/"+gone, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting %s: %s", gone, resp.Status)
	}
}

// A conversion that cannot succeed fails the run with exit status 1 and says why: an image
// that is not in the registry, and a layer eStargz cannot hold (the corpus' hard link into a
// lower layer), named, with nothing pushed under the output tag.
func TestLazyFailures(t *testing.T) {
	reg := harness.StartRegistry(t)
	for _, n := range imagegen.Corpus() {
		if n.Name == imagegen.HardlinksName {
			if err := remote.Write(lazyRef(t, reg.Host+"/lazy/links:1"), n.Image); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tt := range []struct{ repo, want string }{
		{"lazy/missing", "lazy/missing"},
		{"lazy/links", "cannot open the converted layer"},
	} {
		stdout, _ := runFlatbed(t, 1, "lazy", "-r", reg.Host+"/"+tt.repo, "-i", "1", "--plain", "--state-dir", t.TempDir(), "--store-root", t.TempDir())
		if !strings.Contains(stdout, "FAILED") || !strings.Contains(stdout, tt.want) {
			t.Errorf("%s: flatbed lazy said %q, want FAILED naming %q", tt.repo, stdout, tt.want)
		}
		if _, err := remote.Head(lazyRef(t, reg.Host+"/"+tt.repo+":1-estargz")); err == nil {
			t.Errorf("%s: the failed conversion pushed its output tag", tt.repo)
		}
	}
}
