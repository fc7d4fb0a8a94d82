package relocate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/relocate/relocatetest"
)

func TestRelocateBundle(t *testing.T) {
	src, dst := registrytest.Serve(t, nil), registrytest.Serve(t, nil)
	hello, _ := random.Image(256, 1)
	old, _ := random.Image(256, 1)
	current, _ := random.Image(256, 1)
	helloDigest := push(t, src+"/technosophos/helloworld:0.1.0", hello)
	oldDigest := push(t, src+"/deislabs/duffle:0.1.0", old)
	push(t, src+"/deislabs/duffle:0.1.0", current) // the tag moved on since the bundle was made
	in := `{
  "schemaVersion": "v1.0.0",
  "name": "testrelocate",
  "version": "0.1",
  "description": "a bundle with <images> & more",
  "invocationImages": [{"image": "` + src + `/technosophos/helloworld:0.1.0", "imageType": "docker"}],
  "images": {
    "a": {"description": "digested oci", "image": "` + src + `/deislabs/duffle@` + oldDigest.String() + `", "imageType": "oci"},
    "b": {"description": "tagged docker", "image": "` + src + `/deislabs/duffle:0.1.0", "contentDigest": "` + oldDigest.String() + `", "imageType": "docker"},
    "c": {"description": "not an image", "image": "example.com/charts/app:1", "imageType": "helm"}
  },
  "custom": {"big": 12345678901234567890123}
}`
	p, _ := ParsePrefix(dst + "/relocated")
	out, m, err := RelocateBundle(context.Background(), p.Flat, []byte(in), testOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Description      string
		InvocationImages []map[string]string
		Images           map[string]map[string]string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	rel := func(s string) string { return dockerString(mustFlat(t, dst+"/relocated", mustParse(t, s))) }
	inv := got.InvocationImages[0]
	if want := rel(src + "/technosophos/helloworld:0.1.0"); inv["image"] != want || inv["originalImage"] != src+"/technosophos/helloworld:0.1.0" || inv["contentDigest"] != helloDigest.String() {
		t.Errorf("invocation image: got %v, want image %s", inv, want)
	}
	a := got.Images["a"]
	if want := rel(src + "/deislabs/duffle@" + oldDigest.String()); a["image"] != want || a["contentDigest"] != oldDigest.String() {
		t.Errorf("image a: got %v, want image %s", a, want)
	}
	b := got.Images["b"]
	if want := rel(src + "/deislabs/duffle:0.1.0"); b["image"] != want || b["contentDigest"] != oldDigest.String() || b["originalImage"] != src+"/deislabs/duffle:0.1.0" {
		t.Errorf("image b: got %v, want image %s", b, want)
	}
	// b was copied as its contentDigest pins it, not as its tag is today.
	if _, d := served(t, mustParse(t, b["image"])); d != oldDigest {
		t.Errorf("%s serves %s, want the pinned %s", b["image"], d, oldDigest)
	}
	if c := got.Images["c"]; c["image"] != "example.com/charts/app:1" || c["originalImage"] != "" || c["contentDigest"] != "" {
		t.Errorf("a helm image was touched: %v", c)
	}
	for _, s := range []string{`"big":12345678901234567890123`, `<images> & more`, `"schemaVersion":"v1.0.0"`} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("output lost %s:\n%s", s, out)
		}
	}
	if want := rel(src+"/deislabs/duffle:0.1.0") + "@" + oldDigest.String(); m[src+"/deislabs/duffle:0.1.0"] != want || len(m) != 3 {
		t.Errorf("mapping %v, want 3 entries and b to %s", m, want)
	}
}

// TestRelocateThickBundle relocates a bundle whose images are in an OCI layout, with no
// registry to read from.
func TestRelocateThickBundle(t *testing.T) {
	lp, img, idx := thickLayout(t)
	dst := registrytest.Serve(t, nil)
	imgDigest, _ := img.Digest()
	idxDigest, _ := idx.Digest()
	in := `{"name":"thick","invocationImages":[{"image":"technosophos/helloworld:0.1.0"}],
		"images":{"multi":{"image":"quay.io/team/multi","contentDigest":"` + idxDigest.String() + `","imageType":"oci"}}}`
	p, _ := ParsePrefix(dst + "/offline")
	out, m, err := RelocateBundle(context.Background(), p.Flat, []byte(in), append(testOptions(), FromLayout(lp))...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{imgDigest.String(), idxDigest.String(), `"originalImage":"quay.io/team/multi"`} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("output lacks %s:\n%s", s, out)
		}
	}
	multi := mustFlat(t, dst+"/offline", mustParse(t, "quay.io/team/multi"))
	if want := dockerString(multi) + "@" + idxDigest.String(); m["quay.io/team/multi"] != want {
		t.Errorf("mapping %v, want quay.io/team/multi to %s", m, want)
	}
	if _, d := served(t, multi); d != idxDigest {
		t.Errorf("%s serves %s, want %s", dockerString(multi), d, idxDigest)
	}
}

func TestRelocateBundleFails(t *testing.T) {
	src, dst := registrytest.Serve(t, nil), registrytest.Serve(t, relocatetest.RewriteManifests)
	img, _ := random.Image(128, 1)
	push(t, src+"/team/app:1", img)
	in := `{"invocationImages":[{"image":"` + src + `/team/app:1","imageType":"docker"}]}`
	p, _ := ParsePrefix(dst + "/r")
	out, m, err := RelocateBundle(context.Background(), p.Flat, []byte(in), testOptions()...)
	if !errors.Is(err, ErrDigestChanged) || out != nil || len(m) != 0 || !strings.Contains(err.Error(), src+"/team/app:1") {
		t.Fatalf("got %q, %v, %v; want no bundle and a digest error naming the image", out, m, err)
	}
	bad := `{"images":{"a":{"image":"quay.io/a@` + dig + `","contentDigest":"sha256:` + strings.Repeat("0", 64) + `"}}}`
	if _, _, err := RelocateBundle(context.Background(), p.Flat, []byte(bad), testOptions()...); err == nil {
		t.Error("an image pinned to one digest with another contentDigest was accepted")
	}
}
