package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/store"
)

// RerunImagesEnv sets how many images TestUnchangedRerunAsksOneHEADPerImage converts (default
// 10); with 50 it measures the unchanged 50-image wishlist.
const RerunImagesEnv = "FLATBED_E2E_RERUN_IMAGES"

// manifestURI matches /v2/<name>/manifests/<reference>.
var manifestURI = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)

// registryAsked sorts what the registry was asked: the manifest requests per repository
// (methods in order), the pings (GET /v2/) and everything else.
type registryAsked struct {
	manifests map[string][]string
	pings     int
	other     []string
}

func sortRequests(reqs []harness.Request) registryAsked {
	a := registryAsked{manifests: map[string][]string{}}
	for _, q := range reqs {
		switch m := manifestURI.FindStringSubmatch(q.URI); {
		case q.URI == "/v2/" && q.Method == "GET":
			a.pings++
		case m != nil:
			a.manifests[m[1]] = append(a.manifests[m[1]], q.Method)
		default:
			a.other = append(a.other, q.String())
		}
	}
	return a
}

// pushIndex pushes an index of amd64 and arm64 to host/repo:tag and returns its digest.
func pushIndex(t *testing.T, host, ref string, amd64, arm64 v1.Image) string {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, c := range []struct {
		img v1.Image
		p   v1.Platform
	}{{arm64, v1.Platform{OS: "linux", Architecture: "arm64"}}, {amd64, v1.Platform{OS: "linux", Architecture: "amd64"}}} {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: c.img, Descriptor: v1.Descriptor{Platform: &c.p}})
	}
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// Issue 9: a re-run of an unchanged wishlist asks the registry one HEAD per image and pings
// it at most once (Docker Hub counts manifest GETs against pull limits, not HEADs); an image
// whose tag moved is the only one read with a GET, and it is converted again.
func TestUnchangedRerunAsksOneHEADPerImage(t *testing.T) {
	n := 10
	if v, err := strconv.Atoi(os.Getenv(RerunImagesEnv)); err == nil && v > 0 {
		n = v
	}
	imgs := smallImages(t, "rerun/img", n)
	reg := mpPushImages(t, imgs)
	// One more image behind an index (a multi-arch tag): its HEAD names the index.
	arch := smallImages(t, "rerun/arch", 3)
	pushIndex(t, reg.Host, "rerun/multi:1", arch[0].Image, arch[1].Image)
	refs := []string{"rerun/multi:1"}
	for _, img := range imgs {
		refs = append(refs, img.Ref())
	}
	wl := writeRawWishlist(t, reg.Host, refs)
	storeRoot := t.TempDir()
	args := []string{"convert", wl, "--store-root", storeRoot, "--state-dir", t.TempDir(), "-i"}
	out, _ := runFlatbed(t, 0, args...)
	if c := strings.Count(out, "already converted"); c != 0 {
		t.Fatalf("first run: %d images already converted, want none:\n%s", c, out)
	}

	// Unchanged: one HEAD per image, one ping, nothing else.
	seen := len(reg.RequestLog(t))
	start := time.Now()
	out, stderr := runFlatbed(t, 0, args...)
	took := time.Since(start)
	asked := sortRequests(reg.RequestLog(t)[seen:])
	t.Logf("unchanged re-run of %d images: %s; the registry was asked %d manifest requests, %d pings, %d others", len(refs), took.Round(time.Millisecond),
		len(asked.manifests), asked.pings, len(asked.other))
	if testing.Verbose() {
		t.Logf("its log:\n%s", stderr)
	}
	if c := strings.Count(out, "already converted"); c != len(refs) {
		t.Errorf("unchanged re-run: %d images already converted, want %d:\n%s", c, len(refs), out)
	}
	for _, r := range refs {
		repo, _, _ := strings.Cut(r, ":")
		if got := asked.manifests[repo]; len(got) != 1 || got[0] != "HEAD" {
			t.Errorf("unchanged re-run asked %s's manifest with %v, want one HEAD", r, got)
		}
	}
	if len(asked.manifests) != len(refs) {
		t.Errorf("unchanged re-run asked the manifests of %d repositories, want %d: %v", len(asked.manifests), len(refs), asked.manifests)
	}
	if asked.pings > 1 || len(asked.other) > 0 {
		t.Errorf("unchanged re-run pinged %d times (want at most 1) and asked %v besides the manifests (want nothing)", asked.pings, asked.other)
	}

	// One tag moves: only that image is read with a GET, and it is converted again.
	moved := imagegen.Named{Name: imgs[n/2].Name, Tag: imgs[n/2].Tag, Image: arch[2].Image}
	if err := imagegen.Push(context.Background(), reg.Host, []imagegen.Named{moved}); err != nil {
		t.Fatal(err)
	}
	seen = len(reg.RequestLog(t))
	out, _ = runFlatbed(t, 0, args...)
	asked = sortRequests(reg.RequestLog(t)[seen:])
	for _, r := range refs {
		repo, _, _ := strings.Cut(r, ":")
		want := "[HEAD]"
		if r == moved.Ref() {
			want = "[HEAD GET]"
		}
		if got := fmt.Sprint(asked.manifests[repo]); got != want {
			t.Errorf("after %s moved: %s's manifest asked with %s, want %s", moved.Ref(), r, got, want)
		}
	}
	if c := strings.Count(out, "already converted"); c != len(refs)-1 {
		t.Errorf("after %s moved: %d images already converted, want %d:\n%s", moved.Ref(), c, len(refs)-1, out)
	}
	if l := resultLine(t, out, "http://"+reg.Host+"/"+moved.Ref()); strings.Contains(l, "already converted") {
		t.Errorf("the moved image was not converted again: %s", l)
	}
	cfg, _ := imageDigests(t, moved.Image)
	st := store.New(storeRoot + "/" + mpRepo)
	if target, err := os.Readlink(st.PublicPath(reg.Host + "/" + moved.Ref())); err != nil || !strings.HasSuffix(target, "/"+strings.TrimPrefix(cfg, "sha256:")) {
		t.Errorf("the moved tag's public path links to %q (%v), want the flat tree of %s", target, err, cfg)
	}
}
