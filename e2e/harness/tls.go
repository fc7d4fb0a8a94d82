package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// RegistryOption changes how StartRegistry starts the registry.
type RegistryOption func(*Registry)

// WithTLS serves the registry over https with the certificate and key of files (see
// NewTLSFiles); Registry.URL then says https://. After files.RequireClientCerts the registry
// also asks every client for a certificate (mutual TLS).
func WithTLS(files *TLSFiles) RegistryOption {
	return func(r *Registry) { r.tls = files }
}

// TLSFiles are a test certificate authority and a server certificate it signed for
// 127.0.0.1 and localhost, as PEM files. No system trusts the authority.
type TLSFiles struct {
	CA   string // the authority's certificate (what --root-ca takes)
	Cert string // the server certificate
	Key  string // its key
	// ClientCA is the certificate of the authority whose client certificates the registry
	// asks for (distribution's http.tls.clientcas), after RequireClientCerts; "" before.
	ClientCA string
	pool     *x509.CertPool
	clientCA *authority
	own      *tls.Certificate // the harness' client certificate, after RequireClientCerts
}

// authority is a test certificate authority.
type authority struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	der    []byte
	serial atomic.Int64
}

func newAuthority(t testing.TB, cn string) *authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	a := &authority{cert: cert, key: key, der: der}
	a.serial.Store(1)
	return a
}

// issue signs a certificate from tmpl (its serial and validity set here) and returns it and
// its key, DER-encoded (the key as SEC 1).
func (a *authority) issue(t testing.TB, tmpl *x509.Certificate) (certDER, keyDER []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl.SerialNumber = big.NewInt(a.serial.Add(1))
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
	certDER, err = x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err = x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return certDER, keyDER
}

// writePEM writes one PEM block to path (mode 0600: keys are among them).
func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// NewTLSFiles makes a certificate authority and a server certificate in a test temp dir.
func NewTLSFiles(t testing.TB) *TLSFiles {
	t.Helper()
	dir := t.TempDir()
	ca := newAuthority(t, "flatbed e2e test CA")
	der, keyDER := ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	f := &TLSFiles{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "registry.crt"), Key: filepath.Join(dir, "registry.key"),
		pool: x509.NewCertPool()}
	f.pool.AddCert(ca.cert)
	writePEM(t, f.CA, "CERTIFICATE", ca.der)
	writePEM(t, f.Cert, "CERTIFICATE", der)
	writePEM(t, f.Key, "EC PRIVATE KEY", keyDER)
	return f
}

// RequireClientCerts makes a second authority, for clients: a registry started WithTLS(f)
// afterwards asks every client for a certificate it signed (mutual TLS), and f's Transport
// shows one. ClientCert issues more.
func (f *TLSFiles) RequireClientCerts(t testing.TB) {
	t.Helper()
	f.clientCA = newAuthority(t, "flatbed e2e client CA")
	f.ClientCA = filepath.Join(filepath.Dir(f.CA), "client-ca.pem")
	writePEM(t, f.ClientCA, "CERTIFICATE", f.clientCA.der)
	dir := t.TempDir()
	cert, key := f.ClientCert(t, dir, "harness")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	f.own = &pair
}

// ClientCert issues a client certificate signed by the client authority of
// RequireClientCerts and writes it as dir/base.cert with its key dir/base.key, the names
// docker's certs.d layout gives them; it returns their paths.
func (f *TLSFiles) ClientCert(t testing.TB, dir, base string) (cert, key string) {
	t.Helper()
	if f.clientCA == nil {
		t.Fatal("ClientCert before RequireClientCerts")
	}
	der, keyDER := f.clientCA.issue(t, &x509.Certificate{
		Subject:  pkix.Name{CommonName: "flatbed e2e client " + base},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	cert, key = filepath.Join(dir, base+".cert"), filepath.Join(dir, base+".key")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, key, "EC PRIVATE KEY", keyDER)
	return cert, key
}

// Transport trusts the test authority alone, for a test's own requests to the registry (with
// the harness' client certificate after RequireClientCerts).
func (f *TLSFiles) Transport() http.RoundTripper { return f.transport() }

func (f *TLSFiles) transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: f.pool, MinVersion: tls.VersionTLS12}
	if f.own != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*f.own}
	}
	return tr
}

// config is the registry configuration's http.tls section (it continues the http: block).
func (f *TLSFiles) config() string {
	s := fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", f.Cert, f.Key)
	if f.ClientCA != "" {
		s += fmt.Sprintf("    clientcas:\n      - %s\n", f.ClientCA)
	}
	return s
}
