package relocator

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/registry/registrytest"
)

// plainRegistry serves an in-memory registry over plain http, recording what each
// connection opens with.
func plainRegistry(t *testing.T) (string, *registrytest.FirstBytes) {
	t.Helper()
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	l := &registrytest.FirstBytes{Listener: srv.Listener}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), l
}

// Source and target named http:// are only ever spoken to in plain http: go-containerregistry
// alone would open with a TLS handshake (its ping tries https first).
func TestRelocateNeverTriesTLSOnPlainRegistries(t *testing.T) {
	srcHost, src := plainRegistry(t)
	dstHost, dst := plainRegistry(t)
	img, _ := random.Image(256, 1)
	push(t, srcHost+"/team/app:1", img)
	src.Reset()
	resolved := eventstest.Describe(t, img, srcHost, "team/app", "1").Image
	s, _ := newService()
	s.Registry = append(registrytest.Options(), registry.WithTransport(http.DefaultTransport.(*http.Transport).Clone()))
	if err := handle(t, s, relocateJob("http://"+srcHost+"/team/app:1", "http://"+dstHost+"/mirror"), resolved, 1); err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*registrytest.FirstBytes{"source": src, "target": dst} {
		if tls, all := l.TLSHandshakes(); tls != 0 || all == 0 {
			t.Errorf("%s registry: %d of %d connections opened with a TLS handshake", name, tls, all)
		}
	}
}
