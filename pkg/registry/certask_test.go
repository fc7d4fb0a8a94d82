package registry

import (
	"crypto/tls"
	"encoding/pem"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// resettingRegistry is a TLS server (asking for a client certificate as auth says) that
// resets every connection right after the handshake without sending an alert: with
// tls.RequestClientCert and no certificate shown, what a
// client of docker-registry (mutual TLS, TLS 1.3) sees when its request races the registry's
// "certificate required". It returns the host and the PEM of its certificate.
func resettingRegistry(t *testing.T, auth tls.ClientAuthType) (string, []byte) {
	t.Helper()
	s := httptest.NewTLSServer(nil)
	cert, caPEM := s.TLS.Certificates[0], pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	s.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: auth, MinVersion: tls.VersionTLS13})
				_ = tc.Handshake()
				time.Sleep(20 * time.Millisecond) // the client's request arrives
				_ = c.(*net.TCPConn).SetLinger(0)
				_ = c.Close()
			}()
		}
	}()
	return l.Addr().String(), caPEM
}

// A registry that asked for a client certificate, was shown none and reset the connection
// right after the handshake (before its alert could be read), twice, refused us for want of a
// client certificate: final at once, saying so, not retried as a passing reset.
func TestClientCertificateMissingReset(t *testing.T) {
	host, caPEM := resettingRegistry(t, tls.RequestClientCert)
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "ca.crt"), caPEM)
	err, took := getWith(t, host, TLS{CertDirs: []string{dir}})
	if err == nil {
		t.Fatal("no error")
	}
	if !Final(err) || Temporary(err) {
		t.Errorf("Final(%v) = %v, Temporary = %v: want final", err, Final(err), Temporary(err))
	}
	if took > 1500*time.Millisecond {
		t.Errorf("took %s: the refusal was retried as a passing reset", took)
	}
	wantReason(t, err, "the registry at "+host+" asks for a client certificate (mutual TLS) and was shown none (it reset", "give --cert-dir DIR")
}

// A reset on a connection whose registry did not ask for a client certificate stays temporary.
func TestResetWithoutCertificateRequestTemporary(t *testing.T) {
	host, caPEM := resettingRegistry(t, tls.NoClientCert)
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "ca.crt"), caPEM)
	err, _ := getWith(t, host, TLS{CertDirs: []string{dir}})
	if err == nil || noCert(err) || !Temporary(err) || strings.Contains(Reason(err), "client certificate") {
		t.Errorf("err = %v (%s): want a plain reset", err, Reason(err))
	}
}
