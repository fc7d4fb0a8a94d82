package registry

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// client issues a client certificate and writes it as dir/base.cert and dir/base.key; it
// returns the key's PEM.
func (ca *testCA) client(t *testing.T, dir, base string) []byte {
	t.Helper()
	return ca.clientUntil(t, dir, base, time.Now().Add(time.Hour))
}

// clientUntil is client with a certificate valid until notAfter.
func (ca *testCA) clientUntil(t *testing.T, dir, base string, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: base},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	mustWrite(t, filepath.Join(dir, base+".cert"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	mustWrite(t, filepath.Join(dir, base+".key"), keyPEM)
	return keyPEM
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// mtlsRegistry is a registry over TLS that asks every client for a certificate clientCA
// signed, holding one image; it returns its host and the PEM of its server certificate.
func mtlsRegistry(t *testing.T, clientCA *testCA, maxVersion uint16) (string, []byte) {
	t.Helper()
	s := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.cert)
	s.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MaxVersion: maxVersion}
	s.StartTLS()
	t.Cleanup(s.Close)
	host := strings.TrimPrefix(s.URL, "https://")
	serverCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})

	dir := t.TempDir()
	clientCA.client(t, dir, "seed")
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "seed.cert"), filepath.Join(dir, "seed.key"))
	if err != nil {
		t.Fatal(err)
	}
	tr := s.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{pair}
	ref, _ := name.ParseReference(host + "/demo/hello:1.0")
	img, _ := random.Image(256, 1)
	if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
		t.Fatal(err)
	}
	return host, serverCA
}

// getWith reads the registry's image with the TLS settings t, as the stages do.
func getWith(t *testing.T, host string, settings TLS) (error, time.Duration) {
	t.Helper()
	opt, err := settings.Option()
	if err != nil {
		t.Fatalf("%+v: %v", settings, err)
	}
	ref, _ := name.ParseReference(host + "/demo/hello:1.0")
	ctx := ContextWithScheme(context.Background(), "https", host)
	start := time.Now()
	_, err = remote.Get(ref, Options(ctx, WithKeychain(none), WithRetryBackoff(remote.Backoff{Duration: 2 * time.Second, Steps: 5}), opt)...)
	return err, time.Since(start)
}

// A registry that asks for a client certificate (mutual TLS) is read with one from a
// certificate directory (flat, or in the registry's host:port subdirectory) or given
// explicitly; without one (or with one in another registry's subdirectory, or signed by
// an authority it does not trust) it fails at once, saying it wants a client certificate
// and naming --cert-dir.
func TestClientCertificates(t *testing.T) {
	clientCA := newTestCA(t, "client CA")
	host, serverCA := mtlsRegistry(t, clientCA, 0)

	flat := t.TempDir()
	mustWrite(t, filepath.Join(flat, "ca.crt"), serverCA)
	clientCA.client(t, flat, "client")
	perHost := t.TempDir()
	mustWrite(t, filepath.Join(perHost, host, "ca.crt"), serverCA)
	clientCA.client(t, filepath.Join(perHost, host), "client")
	otherHost := t.TempDir()
	mustWrite(t, filepath.Join(otherHost, "ca.crt"), serverCA)
	clientCA.client(t, filepath.Join(otherHost, "127.0.0.1:1"), "client")
	explicit := t.TempDir()
	clientCA.client(t, explicit, "me")
	mustWrite(t, filepath.Join(explicit, "ca.pem"), serverCA)
	stranger := t.TempDir()
	mustWrite(t, filepath.Join(stranger, "ca.crt"), serverCA)
	newTestCA(t, "another CA").client(t, stranger, "client")
	expired := t.TempDir()
	mustWrite(t, filepath.Join(expired, "ca.crt"), serverCA)
	clientCA.clientUntil(t, expired, "client", time.Now().Add(-time.Hour))

	err, took := getWith(t, host, TLS{RootCAs: []string{filepath.Join(explicit, "ca.pem")}})
	if err == nil {
		t.Fatal("read without a client certificate: no error")
	}
	if !Final(err) || Temporary(err) {
		t.Errorf("Final(%v) = %v, Temporary = %v: a missing client certificate does not mend itself", err, Final(err), Temporary(err))
	}
	if took > 1500*time.Millisecond {
		t.Errorf("took %s: a refused client certificate was retried", took)
	}
	wantReason(t, err, "the registry at "+host+" asks for a client certificate (mutual TLS) and was shown none (tls: certificate required): give --cert-dir DIR", "--client-cert FILE --client-key FILE")

	for _, c := range []struct {
		what string
		tls  TLS
	}{
		{"--cert-dir, flat", TLS{CertDirs: []string{flat}}},
		{"--cert-dir, the registry's subdirectory", TLS{CertDirs: []string{perHost}}},
		{"--client-cert", TLS{RootCAs: []string{filepath.Join(explicit, "ca.pem")}, ClientCert: filepath.Join(explicit, "me.cert"), ClientKey: filepath.Join(explicit, "me.key")}},
		{"--cert-dir with --insecure", TLS{Insecure: true, CertDirs: []string{perHost}}},
	} {
		if err, _ := getWith(t, host, c.tls); err != nil {
			t.Errorf("%s: %v", c.what, err)
		}
	}

	err, _ = getWith(t, host, TLS{CertDirs: []string{otherHost}})
	wantReason(t, err, "asks for a client certificate (mutual TLS) and was shown none") // another registry's certificate is not shown
	// crypto/tls shows no certificate whose issuer the registry does not name as trusted.
	err, _ = getWith(t, host, TLS{CertDirs: []string{stranger}})
	wantReason(t, err, "the registry at "+host+" asks for a client certificate (mutual TLS) signed by an authority it trusts, and none of those given is (tls: certificate required)", "--cert-dir DIR")
	err, took = getWith(t, host, TLS{CertDirs: []string{expired}})
	wantReason(t, err, "the registry at "+host+" did not accept our client certificate (tls: expired certificate): give a valid one", "--cert-dir DIR")
	if !Final(err) || took > 1500*time.Millisecond {
		t.Errorf("Final = %v, took %s: want a final error at once", Final(err), took)
	}
}

// Over TLS 1.2 crypto/tls ends the handshake of a client without a certificate with
// "handshake failure", which may also mean other things: the reason names client
// certificates among them.
func TestClientCertificateMissingTLS12(t *testing.T) {
	clientCA := newTestCA(t, "client CA")
	host, serverCA := mtlsRegistry(t, clientCA, tls.VersionTLS12)
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "ca.crt"), serverCA)
	err, took := getWith(t, host, TLS{CertDirs: []string{dir}})
	wantReason(t, err, "the TLS handshake with "+host+" failed (tls: handshake failure)", "or it asks for a client certificate (give --cert-dir DIR")
	if !Final(err) || took > 1500*time.Millisecond {
		t.Errorf("Final = %v, took %s: want a final error at once", Final(err), took)
	}
	clientCA.client(t, dir, "client")
	if err, _ := getWith(t, host, TLS{CertDirs: []string{dir}}); err != nil {
		t.Errorf("with the client certificate: %v", err)
	}
}

// Mistakes in the certificate files are errors that name the file, never the key's bytes.
func TestCertDirMistakes(t *testing.T) {
	ca := newTestCA(t, "client CA")
	good := t.TempDir()
	keyPEM := ca.client(t, good, "client")
	otherKey := ca.client(t, t.TempDir(), "other")

	mk := func(files map[string][]byte) string {
		d := t.TempDir()
		for n, b := range files {
			mustWrite(t, filepath.Join(d, n), b)
		}
		return d
	}
	certPEM, _ := os.ReadFile(filepath.Join(good, "client.cert"))
	certOnly := mk(map[string][]byte{"client.cert": certPEM})
	keyOnly := mk(map[string][]byte{"sub:5000/client.key": keyPEM, "ca.crt": ca.pem})
	badCA := mk(map[string][]byte{"ca.crt": []byte("not a certificate")})
	badCert := mk(map[string][]byte{"client.cert": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "client.key": keyPEM})
	noKeyPEM := mk(map[string][]byte{"client.cert": certPEM, "client.key": []byte("secret-but-not-pem")})
	badKey := mk(map[string][]byte{"client.cert": certPEM, "client.key": []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")})
	mismatch := mk(map[string][]byte{"client.cert": certPEM, "client.key": otherKey})
	keyInCert := mk(map[string][]byte{"client.cert": append(append([]byte{}, certPEM...), keyPEM...), "client.key": keyPEM})
	encrypted := mk(map[string][]byte{"client.cert": certPEM, "client.key": pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("xyz")})})
	dangling := t.TempDir()
	os.Symlink(filepath.Join(dangling, "gone"), filepath.Join(dangling, "ca.crt"))
	empty := mk(map[string][]byte{"hosts.toml": []byte("server = 'x'")})

	for _, c := range []struct {
		tls  TLS
		want []string
	}{
		{TLS{CertDirs: []string{certOnly}}, []string{filepath.Join(certOnly, "client.cert"), "has no key client.key"}},
		{TLS{CertDirs: []string{keyOnly}}, []string{filepath.Join(keyOnly, "sub:5000", "client.key"), "has no client certificate client.cert"}},
		{TLS{CertDirs: []string{badCA}}, []string{"--cert-dir " + filepath.Join(badCA, "ca.crt"), "no PEM certificate"}},
		{TLS{CertDirs: []string{badCert}}, []string{"client certificate " + filepath.Join(badCert, "client.cert"), "malformed certificate"}},
		{TLS{CertDirs: []string{noKeyPEM}}, []string{"key " + filepath.Join(noKeyPEM, "client.key"), "no PEM private key"}},
		{TLS{CertDirs: []string{badKey}}, []string{"key " + filepath.Join(badKey, "client.key"), "malformed private key"}},
		{TLS{CertDirs: []string{mismatch}}, []string{"key " + filepath.Join(mismatch, "client.key") + " does not match the client certificate " + filepath.Join(mismatch, "client.cert")}},
		{TLS{CertDirs: []string{keyInCert}}, []string{filepath.Join(keyInCert, "client.cert"), "holds a private key"}},
		{TLS{CertDirs: []string{encrypted}}, []string{filepath.Join(encrypted, "client.key"), "encrypted with a passphrase"}},
		{TLS{CertDirs: []string{dangling}}, []string{filepath.Join(dangling, "ca.crt")}},
		{TLS{CertDirs: []string{empty}}, []string{"--cert-dir " + empty + ": no root CA (*.crt), client certificate"}},
		{TLS{CertDirs: []string{filepath.Join(empty, "missing")}}, []string{"--cert-dir " + filepath.Join(empty, "missing")}},
		{TLS{ClientCert: filepath.Join(good, "client.cert")}, []string{"--client-cert " + filepath.Join(good, "client.cert") + ": give its key with --client-key"}},
		{TLS{ClientKey: filepath.Join(good, "client.key")}, []string{"--client-key " + filepath.Join(good, "client.key") + ": give its certificate with --client-cert"}},
		{TLS{ClientCert: filepath.Join(good, "client.cert"), ClientKey: filepath.Join(mismatch, "client.key")}, []string{"--client-cert: key " + filepath.Join(mismatch, "client.key") + " does not match"}},
	} {
		_, err := c.tls.Option()
		if err == nil {
			t.Errorf("%+v: no error", c.tls)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %q does not say %q", c.tls, err, w)
			}
		}
		for _, k := range [][]byte{keyPEM, otherKey, []byte("secret-but-not-pem")} {
			if leaksPEM(err.Error(), k) {
				t.Errorf("%+v: the error %q shows the key", c.tls, err)
			}
		}
	}
	if _, err := (TLS{CertDirs: []string{good}}).Option(); err != nil {
		t.Errorf("a directory with a client certificate and key: %v", err)
	}
}

// leaksPEM says whether s holds a line of a key's PEM body (or the whole of a key that is no PEM).
func leaksPEM(s string, data []byte) bool {
	if !bytes.Contains(data, []byte("-----")) {
		return strings.Contains(s, string(data))
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) >= 16 && !bytes.HasPrefix(line, []byte("-----")) && strings.Contains(s, string(line)) {
			return true
		}
	}
	return false
}

// A registry's subdirectory applies to that host:port as requests name it; "host" stands for
// the scheme's default port.
func TestHostTLSTransportFor(t *testing.T) {
	def, a, b, c := &http.Transport{}, &http.Transport{}, &http.Transport{}, &http.Transport{}
	ht := &hostTLSTransport{def: def, hosts: map[string]*http.Transport{"reg.example.org:5000": a, "reg.example.org": b, "[::1]:443": c}}
	for _, tc := range []struct {
		scheme, host string
		want         *http.Transport
	}{
		{"https", "reg.example.org:5000", a},
		{"https", "REG.example.org:5000", a},
		{"https", "reg.example.org", b},
		{"https", "reg.example.org:443", b},
		{"http", "reg.example.org:80", b},
		{"https", "reg.example.org:5001", def},
		{"https", "other.example.org", def},
		{"https", "[::1]", c},
		{"https", "[::1]:443", c},
		{"https", "[::1]:5000", def},
	} {
		if got := ht.transportFor(tc.scheme, tc.host); got != tc.want {
			t.Errorf("transportFor(%s, %s) is not the expected transport", tc.scheme, tc.host)
		}
	}
}
