package registry_test

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/registry/registrytest"
)

// firstBytes is a listener that records the first byte each connection sends.
type firstBytes struct {
	net.Listener
	mu    sync.Mutex
	first []byte
}

func (l *firstBytes) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, l: l}, nil
}

func (l *firstBytes) reset() {
	l.mu.Lock()
	l.first = nil
	l.mu.Unlock()
}

// tlsHellos counts the connections that began with a TLS handshake record (0x16).
func (l *firstBytes) tlsHellos() (hellos, all int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.first {
		if b == 0x16 {
			hellos++
		}
	}
	return hellos, len(l.first)
}

type recordingConn struct {
	net.Conn
	l    *firstBytes
	once sync.Once
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.once.Do(func() {
			c.l.mu.Lock()
			c.l.first = append(c.l.first, p[0])
			c.l.mu.Unlock()
		})
	}
	return n, err
}

// plainRegistry serves an in-memory registry over plain http, recording what each
// connection opens with.
func plainRegistry(t *testing.T) (host string, l *firstBytes) {
	t.Helper()
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	l = &firstBytes{Listener: srv.Listener}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), l
}

// TestPlainHTTPNeverTriesTLS: an image named http:// is read over plain http from the first
// request on; go-containerregistry alone opens with a TLS handshake (its ping tries https
// first), which the test sees, so the test would catch the fix going away.
func TestPlainHTTPNeverTriesTLS(t *testing.T) {
	host, l := plainRegistry(t)
	pushTags(t, host, "plain/x", []string{"1"})
	repo, err := name.NewRepository(host+"/plain/x", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}

	// Each listing gets a transport of its own, so that it opens its connections anew.
	fresh := func() []registry.Option {
		return append(registrytest.Options(), registry.WithTransport(http.DefaultTransport.(*http.Transport).Clone()))
	}
	l.reset()
	if _, err := registry.Tags(context.Background(), repo, fresh()...); err != nil {
		t.Fatal(err)
	}
	if hellos, _ := l.tlsHellos(); hellos == 0 {
		t.Fatal("without the scheme in the context no TLS handshake was seen: the test no longer shows what it guards against")
	}

	l.reset()
	ctx := registry.ContextWithScheme(context.Background(), "http", host)
	if _, err := registry.Tags(ctx, repo, fresh()...); err != nil {
		t.Fatal(err)
	}
	if hellos, all := l.tlsHellos(); hellos > 0 || all == 0 {
		t.Errorf("%d of %d connections to the http:// registry began with a TLS handshake, want none", hellos, all)
	}
}

// TestHTTPSNeverFallsBackToHTTP: an image named https:// on a loopback address is never read
// over plain http (go-containerregistry falls back to http there): a plain-http registry
// fails, saying it does not speak TLS.
func TestHTTPSNeverFallsBackToHTTP(t *testing.T) {
	host, _ := plainRegistry(t)
	pushTags(t, host, "plain/x", []string{"1"})
	repo, err := name.NewRepository(host + "/plain/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Tags(context.Background(), repo, registrytest.Options()...); err != nil {
		t.Fatalf("without the scheme in the context go-containerregistry was expected to fall back to http: %v", err)
	}
	ctx := registry.ContextWithScheme(context.Background(), "https", host)
	_, err = registry.Tags(ctx, repo, registrytest.Options()...)
	if err == nil || !registry.Final(err) || !strings.Contains(registry.Reason(err), "does not speak TLS") {
		t.Errorf("Tags over https of a plain-http registry = %v (reason %q), want a final error saying it does not speak TLS", err, registry.Reason(err))
	}
}
