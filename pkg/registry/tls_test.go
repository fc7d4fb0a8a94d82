package registry

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A registry whose certificate no system trusts is read with its CA given (--root-ca) or with
// the check skipped (--insecure); without either it fails at once, naming --root-ca.
func TestTLSOptions(t *testing.T) {
	s := httptest.NewTLSServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer s.Close()
	host := strings.TrimPrefix(s.URL, "https://")
	ref, err := name.ParseReference(host + "/demo/hello:1.0")
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(256, 1)
	if err := remote.Write(ref, img, remote.WithTransport(s.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	get := func(tlsOpts TLS) error {
		t.Helper()
		opt, err := tlsOpts.Option()
		if err != nil {
			t.Fatal(err)
		}
		ctx := ContextWithScheme(context.Background(), "https", host)
		_, err = remote.Get(ref, Options(ctx, WithKeychain(none), WithRetryBackoff(fast), opt)...)
		return err
	}
	err = get(TLS{})
	if err == nil {
		t.Fatal("read without the CA: no error")
	}
	if !Final(err) {
		t.Errorf("Final(%v) = false: an untrusted certificate does not mend itself", err)
	}
	wantReason(t, err, "is not trusted (signed by an unknown authority)", "--root-ca FILE", "--insecure")
	if err := get(TLS{RootCAs: []string{ca}}); err != nil {
		t.Errorf("with --root-ca: %v", err)
	}
	if err := get(TLS{Insecure: true}); err != nil {
		t.Errorf("with --insecure: %v", err)
	}

	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o644)
	for _, f := range []string{notPEM, filepath.Join(t.TempDir(), "missing.pem")} {
		if _, err := (TLS{RootCAs: []string{f}}).Option(); err == nil || !strings.Contains(err.Error(), "--root-ca "+f) {
			t.Errorf("TLS{RootCAs: %s}.Option() = %v, want an error naming it", f, err)
		}
	}
}
