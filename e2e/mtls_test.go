package e2e

import (
	"bytes"
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

// The real docker-registry asking every client for a certificate (mutual TLS,
// distribution's http.tls.clientcas): without a client certificate a conversion fails at
// once, saying the registry asks for one and naming --cert-dir; with --cert-dir in docker's
// certs.d layout (flat, or the registry's own host:port subdirectory; not another
// registry's) or --client-cert/--client-key every stage that talks to the registry (resolver,
// ingester, thin pusher; lazy; the relocator) reads and writes it. Mistakes in the files are usage errors
// naming the file, and the key is never shown.
func TestMutualTLSRegistry(t *testing.T) {
	files := harness.NewTLSFiles(t)
	files.RequireClientCerts(t)
	reg := harness.StartRegistry(t, harness.WithTLS(files))
	img := smallImages(t, "mtls/img", 2)[1] // two layers
	ref, err := name.ParseReference(reg.Host + "/" + img.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img.Image, remote.WithTransport(files.Transport())); err != nil {
		t.Fatal(err)
	}
	image := "https://" + reg.Host + "/" + img.Ref()
	wl := filepath.Join(t.TempDir(), "wishlist.yaml")
	if err := os.WriteFile(wl, []byte(fmt.Sprintf("version: 1\nuser: e2e\ncvmfs_repo: '%s'\noutput_format: '$(scheme)://$(registry)/thin/$(repository):$(tag)'\ninput:\n  - '%s'\n",
		mpRepo, image)), 0o644); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	certDir := func(caSub, sub string) (dir, key string) {
		dir = t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, caSub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, caSub, "ca.crt"), caPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		_, key = files.ClientCert(t, filepath.Join(dir, sub), "client")
		return dir, key
	}
	flat, flatKey := certDir(".", ".")
	perHost, hostKey := certDir(reg.Host, reg.Host) // docker's /etc/docker/certs.d/<host:port>/
	other, _ := certDir(".", "127.0.0.1:1")         // the CA for all, the client certificate another registry's
	explicit := t.TempDir()
	cert, key := files.ClientCert(t, explicit, "me")
	var keys [][]byte
	for _, k := range []string{flatKey, hostKey, key} {
		b, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, b)
	}
	noKey := func(what, out string) {
		t.Helper()
		for _, k := range keys {
			for _, line := range bytes.Split(k, []byte("\n")) {
				if len(line) >= 16 && !bytes.HasPrefix(line, []byte("-----")) && strings.Contains(out, string(line)) {
					t.Errorf("%s: the output shows a client key", what)
					return
				}
			}
		}
	}

	thinRef, err := name.ParseReference(reg.Host + "/thin/" + img.Ref())
	if err != nil {
		t.Fatal(err)
	}
	convert := func(want int, flags ...string) string {
		t.Helper()
		storeRoot := t.TempDir()
		out, errOut := runFlatbed(t, want, append([]string{"convert", wl, "--store-root", storeRoot, "--state-dir", t.TempDir(), "--max-attempts", "2"}, flags...)...)
		noKey(strings.Join(flags, " "), out+errOut)
		if want == 0 {
			st := store.New(filepath.Join(storeRoot, mpRepo))
			if _, err := os.Stat(filepath.Join(st.PublicPath(reg.Host+"/"+img.Ref()), "mtls", "img01")); err != nil {
				t.Errorf("%v: the image's files are not in the store: %v", flags, err)
			}
			if !strings.Contains(out, "converted ") {
				t.Errorf("%v: %s", flags, out)
			}
		}
		return out
	}
	wantAsks := func(what, out string) {
		t.Helper()
		for _, w := range []string{"the registry at " + reg.Host + " asks for a client certificate (mutual TLS) and was shown none", "give --cert-dir DIR", "--client-cert FILE --client-key FILE"} {
			if !strings.Contains(out, w) {
				t.Errorf("%s: %q does not say %q", what, lastLines(out, 5), w)
			}
		}
	}

	failed := lineFor(convert(1, "--root-ca", files.CA), "FAILED", image)
	t.Log(failed)
	wantAsks("without a client certificate", failed)
	wantAsks("with another registry's directory", lineFor(convert(1, "--cert-dir", other), "FAILED", image))
	if _, err := remote.Head(thinRef, remote.WithTransport(files.Transport())); err == nil {
		t.Fatal("a thin image is there before any run succeeded")
	}
	convert(0, "--cert-dir", flat)
	if _, err := remote.Head(thinRef, remote.WithTransport(files.Transport())); err != nil {
		t.Errorf("with --cert-dir, the thin image was not pushed: %v", err)
	}
	convert(0, "--cert-dir", perHost, "-v")
	convert(0, "--root-ca", files.CA, "--client-cert", cert, "--client-key", key)

	// lazy: the resolver, the lazy stage and its pushes.
	repo, tag, _ := strings.Cut(img.Ref(), ":")
	lazyRun := func(want int, flags ...string) string {
		t.Helper()
		out, errOut := runFlatbed(t, want, append([]string{"lazy", "-r", reg.Host + "/" + repo, "-i", tag, "-o", "esgz",
			"--state-dir", t.TempDir(), "--store-root", t.TempDir()}, flags...)...)
		noKey("lazy "+strings.Join(flags, " "), out+errOut)
		return out + errOut
	}
	wantAsks("lazy without a client certificate", lazyRun(1, "--root-ca", files.CA))
	lazyRun(0, "--cert-dir", perHost)
	converted, err := name.ParseReference(reg.Host + "/" + repo + ":esgz")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(converted, remote.WithTransport(files.Transport())); err != nil {
		t.Errorf("lazy --cert-dir: the converted image is not there: %v", err)
	}

	// The relocator too.
	runFlatbed(t, 0, "relocate", "--repository-prefix", reg.Host+"/mirror", "--no-flatten", image, "--cert-dir", perHost,
		"--state-dir", t.TempDir(), "--store-root", t.TempDir())
	mirrored, err := name.ParseReference(reg.Host + "/mirror/" + img.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(mirrored, remote.WithTransport(files.Transport())); err != nil {
		t.Errorf("relocated with --cert-dir: %v", err)
	}

	// A client certificate without its key, and a key that is not its certificate's, are
	// usage errors naming the files (serve's services read them before they start).
	lonely := t.TempDir()
	files.ClientCert(t, lonely, "client")
	os.Remove(filepath.Join(lonely, "client.key"))
	for _, cmd := range [][]string{{"convert", wl}, {"serve"}} {
		_, errOut := runFlatbed(t, 2, append(cmd, "--store-root", t.TempDir(), "--state-dir", t.TempDir(), "--cert-dir", lonely)...)
		if !strings.Contains(errOut, filepath.Join(lonely, "client.cert")) || !strings.Contains(errOut, "has no key client.key") {
			t.Errorf("%s: a .cert without its .key: %s", cmd[0], lastLines(errOut, 5))
		}
	}
	_, errOut := runFlatbed(t, 2, "lazy", "-r", reg.Host+"/"+repo, "-i", tag, "--state-dir", t.TempDir(), "--store-root", t.TempDir(),
		"--client-cert", cert, "--client-key", flatKey)
	noKey("a mismatched key", errOut)
	if !strings.Contains(errOut, "key "+flatKey+" does not match the client certificate "+cert) {
		t.Errorf("a key that is not the certificate's: %s", lastLines(errOut, 5))
	}
}
