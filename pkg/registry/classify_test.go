package registry

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// getManifest asks for the manifest of ref with opts, as the resolver does, and says how long
// it took.
func getManifest(t *testing.T, ref string, opts ...Option) (error, time.Duration) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = remote.Get(r, Options(context.Background(), append([]Option{WithKeychain(none)}, opts...)...)...)
	if err == nil {
		t.Fatalf("GET %s succeeded", ref)
	}
	return err, time.Since(start)
}

// dialingTo is a transport that connects to addr whatever the request's host, so that tests
// can name a registry "example.com" (https only, a name in httptest's certificate).
func dialingTo(addr string, tlsConfig *tls.Config) http.RoundTripper {
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: tlsConfig,
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silent is a registry that accepts connections and never sends a byte.
func silent(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func wantReason(t *testing.T, err error, parts ...string) {
	t.Helper()
	r := Reason(err)
	t.Log(r)
	for _, p := range parts {
		if !strings.Contains(r, p) {
			t.Errorf("Reason = %q, want it to contain %q (err: %v)", r, p, err)
		}
	}
}

// A name the DNS does not know fails at once: no back-off (2 s here) is waited.
func TestNoSuchHostIsPermanent(t *testing.T) {
	err, took := getManifest(t, "flatbed-test.invalid/demo/hello:1.0", WithRetryBackoff(remote.Backoff{Duration: 2 * time.Second, Steps: 5}))
	if Temporary(err) {
		t.Errorf("Temporary(%v) = true, want false: the name will not resolve by itself", err)
	}
	wantReason(t, err, "no such host flatbed-test.invalid: check the registry name")
	if took > 1500*time.Millisecond {
		t.Errorf("took %s: a name that does not resolve was retried", took)
	}
}

func TestConnectionRefusedIsTemporary(t *testing.T) {
	addr := closedPort(t)
	err, _ := getManifest(t, addr+"/demo/hello:1.0", WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 2}))
	if !Temporary(err) {
		t.Errorf("Temporary(%v) = false, want true: the registry may be restarting", err)
	}
	wantReason(t, err, "nothing listens on "+addr+": is the registry up?")
}

func TestTLSCertificateNotTrusted(t *testing.T) {
	s := httptest.NewTLSServer(http.NotFoundHandler())
	defer s.Close()
	// No RootCAs: the system's, which do not hold httptest's CA.
	err, took := getManifest(t, "example.com/demo/hello:1.0", WithTransport(dialingTo(s.Listener.Addr().String(), nil)),
		WithRetryBackoff(remote.Backoff{Duration: 2 * time.Second, Steps: 5}))
	if Temporary(err) {
		t.Errorf("Temporary(%v) = true, want false: the certificate will not become trusted by itself", err)
	}
	wantReason(t, err, "the TLS certificate of example.com:443 is not trusted (signed by an unknown authority)", "--root-ca FILE", "update-ca-certificates", "http://")
	if took > 1500*time.Millisecond {
		t.Errorf("took %s: an untrusted certificate was retried", took)
	}
}

func TestPlainHTTPRegistryNamedHTTPS(t *testing.T) {
	s := httptest.NewServer(http.NotFoundHandler())
	defer s.Close()
	err, _ := getManifest(t, "example.com/demo/hello:1.0", WithTransport(dialingTo(s.Listener.Addr().String(), nil)),
		WithRetryBackoff(remote.Backoff{Duration: 2 * time.Second, Steps: 5}))
	if Temporary(err) {
		t.Errorf("Temporary(%v) = true, want false", err)
	}
	wantReason(t, err, "example.com:443 does not speak TLS", "name the image with http://")
}

func TestStalledBeforeHeaders(t *testing.T) {
	t.Setenv(StallTimeoutEnv, "100ms")
	addr := silent(t)
	err, took := getManifest(t, addr+"/demo/hello:1.0", WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 2}))
	if !Temporary(err) {
		t.Errorf("Temporary(%v) = false, want true", err)
	}
	wantReason(t, err, "the registry stalled: it sent nothing for 1", "(the stall timeout is 100ms)")
	if took > 2*time.Second {
		t.Errorf("took %s with a stall timeout of 100ms and 2 tries", took)
	}
}

func TestBusyAnswer(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
	}))
	defer s.Close()
	err, _ := getManifest(t, strings.TrimPrefix(s.URL, "http://")+"/demo/hello:1.0", WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 2}))
	if !Temporary(err) {
		t.Errorf("Temporary(%v) = false, want true", err)
	}
	wantReason(t, err, "registry answered 429 Too Many Requests (TOOMANYREQUESTS)")
}

// Local trouble is not the registry's: a full disk is neither retried as a registry fault nor final.
func TestLocalErrorIsNotTheRegistrys(t *testing.T) {
	err := fmt.Errorf("unpacking layer: %w", &os.PathError{Op: "write", Path: "/store/x", Err: syscall.ENOSPC})
	if Temporary(err) || Final(err) || Reason(err) != "" {
		t.Errorf("ENOSPC: Temporary %v, Final %v, Reason %q; want false, false, \"\"", Temporary(err), Final(err), Reason(err))
	}
}
