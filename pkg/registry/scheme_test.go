package registry_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/registry/registrytest"
)

// plainRegistry serves an in-memory registry over plain http, recording what each
// connection opens with.
func plainRegistry(t *testing.T) (host string, l *registrytest.FirstBytes) {
	t.Helper()
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	l = &registrytest.FirstBytes{Listener: srv.Listener}
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
	l.Reset()
	if _, err := registry.Tags(context.Background(), repo, fresh()...); err != nil {
		t.Fatal(err)
	}
	if hellos, _ := l.TLSHandshakes(); hellos == 0 {
		t.Fatal("without the scheme in the context no TLS handshake was seen: the test no longer shows what it guards against")
	}

	l.Reset()
	ctx := registry.ContextWithScheme(context.Background(), "http", host)
	if _, err := registry.Tags(ctx, repo, fresh()...); err != nil {
		t.Fatal(err)
	}
	if hellos, all := l.TLSHandshakes(); hellos > 0 || all == 0 {
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
