package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/store"
)

// Issue 10: a registry serving TLS with a certificate no system trusts (the real
// docker-registry, a CA the test makes) is read and written by every stage that talks to
// registries with --root-ca (the resolver, the ingester, the thin pusher; the relocator) or
// with --insecure; without either the image fails, saying the certificate is not trusted
// and naming --root-ca.
func TestTLSRegistryWithRootCAOrInsecure(t *testing.T) {
	files := harness.NewTLSFiles(t)
	reg := harness.StartRegistry(t, harness.WithTLS(files))
	img := smallImages(t, "tls/img", 2)[1] // two layers
	ref, err := name.ParseReference(reg.Host + "/" + img.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img.Image, remote.WithTransport(files.Transport()), remote.WithContext(context.Background())); err != nil {
		t.Fatal(err)
	}
	image := "https://" + reg.Host + "/" + img.Ref()
	wl := filepath.Join(t.TempDir(), "wishlist.yaml")
	if err := os.WriteFile(wl, []byte(fmt.Sprintf("version: 1\nuser: e2e\ncvmfs_repo: '%s'\noutput_format: '$(scheme)://$(registry)/thin/$(repository):$(tag)'\ninput:\n  - '%s'\n",
		mpRepo, image)), 0o644); err != nil {
		t.Fatal(err)
	}
	convert := func(want int, flags ...string) (string, string) {
		t.Helper()
		storeRoot := t.TempDir()
		out, errOut := runFlatbed(t, want, append([]string{"convert", wl, "--store-root", storeRoot, "--state-dir", t.TempDir(), "--max-attempts", "2"}, flags...)...)
		if want == 0 {
			st := store.New(filepath.Join(storeRoot, mpRepo))
			if _, err := os.Stat(filepath.Join(st.PublicPath(reg.Host+"/"+img.Ref()), "tls", "img01")); err != nil {
				t.Errorf("%v: the image's files are not in the store: %v", flags, err)
			}
		}
		return out, errOut
	}

	out, _ := convert(1)
	line := lineFor(out, "FAILED", image)
	for _, w := range []string{"certificate of " + reg.Host + " is not trusted", "--root-ca FILE", "--insecure"} {
		if !strings.Contains(line, w) {
			t.Errorf("without --root-ca: %q does not say %q", line, w)
		}
	}

	thinRef, err := name.ParseReference(reg.Host + "/thin/" + img.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(thinRef, remote.WithTransport(files.Transport())); err == nil {
		t.Fatal("a thin image is there before any run succeeded")
	}
	if out, _ := convert(0, "--root-ca", files.CA); !strings.Contains(out, "converted ") {
		t.Errorf("with --root-ca: %s", out)
	}
	if _, err := remote.Head(thinRef, remote.WithTransport(files.Transport())); err != nil {
		t.Errorf("with --root-ca, the thin image was not pushed: %v", err)
	}
	if out, _ := convert(0, "--insecure"); !strings.Contains(out, "converted ") {
		t.Errorf("with --insecure: %s", out)
	}

	// The relocator too.
	runFlatbed(t, 0, "relocate", "--repository-prefix", reg.Host+"/mirror", "--no-flatten", image, "--root-ca", files.CA,
		"--state-dir", t.TempDir(), "--store-root", t.TempDir())
	mirrored, err := name.ParseReference(reg.Host + "/mirror/" + img.Ref())
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(mirrored, remote.WithTransport(files.Transport()))
	if err != nil {
		t.Fatalf("relocated with --root-ca: %v", err)
	}
	if want, _ := img.Image.Digest(); d.Digest != want {
		t.Errorf("relocated digest %s, want %s", d.Digest, want)
	}

	// A --root-ca that is no certificate is a usage error naming it.
	bad := filepath.Join(t.TempDir(), "ca.txt")
	os.WriteFile(bad, []byte("no certificate"), 0o644)
	_, errOut := runFlatbed(t, 2, "convert", wl, "--store-root", t.TempDir(), "--state-dir", t.TempDir(), "--root-ca", bad)
	if !strings.Contains(errOut, "--root-ca "+bad) {
		t.Errorf("a bad --root-ca: %s", lastLines(errOut, 5))
	}
}
