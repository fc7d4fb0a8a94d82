package registry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// countingProxy is a pull-through proxy serving the registry at backend under /v2/<path>/, as
// a Harbor proxy-cache project does; it records every request it is sent.
type countingProxy struct {
	host string
	mu   sync.Mutex
	seen []string // "METHOD path"
	auth []string // Authorization headers it was sent
}

func newCountingProxy(t *testing.T, backend, path string) *countingProxy {
	t.Helper()
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: backend})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.Method+" "+r.URL.Path)
		if a := r.Header.Get("Authorization"); a != "" {
			p.auth = append(p.auth, a)
		}
		p.mu.Unlock()
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v2/"+path+"/"); ok {
			r.URL.Path = "/v2/" + rest
		} else if r.URL.Path != "/v2/" {
			http.Error(w, `{"errors":[{"code":"NAME_UNKNOWN","message":"not under the proxy's path"}]}`, http.StatusNotFound)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	p.host = strings.TrimPrefix(s.URL, "http://")
	return p
}

func (p *countingProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// DUCC_<R>_PROXY: every request for registry R (DUCC_<R>_IDENT) goes to its proxy, under the
// proxy's path, anonymously (R's credentials stay home); other registries are asked directly.
func TestDUCCProxyCarriesTheRequestsOfItsRegistry(t *testing.T) {
	backend := serve(t, func(h http.Handler) http.Handler { return h })
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref(t, backend, "library/redis:4"), img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	proxy := newCountingProxy(t, backend, "hub-cache")

	const hub = "hub.flatbed-test.invalid" // resolves nowhere: only the proxy can answer for it
	t.Setenv(AuthRegistriesEnv, "HUB")
	t.Setenv("DUCC_HUB_IDENT", "https://"+hub+"/")
	t.Setenv("DUCC_HUB_PROXY", proxy.host+"/hub-cache")
	t.Setenv("DUCC_HUB_USER", "hub-user")
	t.Setenv("DUCC_HUB_PASS", "hub-Pa55word")
	if err := CheckEnv(); err != nil {
		t.Fatalf("CheckEnv() = %v", err)
	}
	c := NewClient(WithKeychain(none), WithRetryBackoff(fast))

	read := func(host string) {
		t.Helper()
		ctx := ContextWithScheme(context.Background(), "http", host)
		r, err := name.ParseReference(host + "/library/redis:4")
		if err != nil {
			t.Fatal(err)
		}
		err = c.Do(ctx, func(ro []remote.Option) error {
			got, err := remote.Image(r, ro...)
			if err != nil {
				return err
			}
			if d, _ := got.Digest(); d != want {
				t.Errorf("%s: digest %s, want %s", host, d, want)
			}
			layers, err := got.Layers()
			if err != nil {
				return err
			}
			rc, err := layers[0].Compressed()
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			return err
		})
		if err != nil {
			t.Fatalf("reading %s/library/redis:4: %v", host, err)
		}
	}

	read(hub)
	seen := proxy.requests()
	t.Logf("the proxy was asked: %q", seen)
	for _, w := range []string{"GET /v2/hub-cache/library/redis/manifests/4", "GET /v2/hub-cache/library/redis/blobs/"} {
		found := false
		for _, s := range seen {
			found = found || strings.HasPrefix(s, w)
		}
		if !found {
			t.Errorf("the proxy was not asked %q", w)
		}
	}
	if len(proxy.auth) > 0 {
		t.Errorf("credentials were sent to the proxy: %q (DUCC asks a proxy anonymously)", proxy.auth)
	}

	// Another registry (the backend itself) is not proxied.
	read(backend)
	if n := len(proxy.requests()); n != len(seen) {
		t.Errorf("reading %s directly sent %d requests to the proxy of %s", backend, n-len(seen), hub)
	}
}

// An entry with a proxy needs no credentials (DUCC's check); one with neither is named.
func TestDUCCProxyStandsForCredentials(t *testing.T) {
	t.Setenv(AuthRegistriesEnv, "HUB,NONE")
	t.Setenv("DUCC_HUB_IDENT", "registry.hub.docker.com")
	t.Setenv("DUCC_HUB_PROXY", "harbor.example.org/dockerhub")
	t.Setenv("DUCC_NONE_IDENT", "none.example.org")
	err := CheckEnv()
	if err == nil || strings.Contains(err.Error(), `"HUB"`) || !strings.Contains(err.Error(), "DUCC_NONE_PROXY") {
		t.Errorf("CheckEnv() = %v, want only NONE named, with DUCC_NONE_PROXY among the choices", err)
	}
	// No credential for a proxied registry, from the environment or the docker config, is offered.
	t.Setenv("DUCC_HUB_USER", "hub-user")
	t.Setenv("DUCC_HUB_PASS", "hub-Pa55word")
	var asked string
	kc := Keychain(WithKeychain(recorder{&asked}))
	if got := user(t, kc, "registry.hub.docker.com"); got != "" {
		t.Errorf("credentials for the proxied registry: user %q, want none", got)
	}
	if got := user(t, kc, "gitlab-registry.cern.ch"); got != "from-config" {
		t.Errorf("credentials for another registry: user %q, want the docker config's", got)
	}
	if got := parseProxy("r", "harbor.example.org:8443/dockerhub/"); got.host != "harbor.example.org:8443" || got.path != "dockerhub" || got.scheme != "" {
		t.Errorf("parseProxy = %+v", got)
	}
	if got := parseProxy("r", "http://127.0.0.1:5000"); got.host != "127.0.0.1:5000" || got.path != "" || got.scheme != "http" {
		t.Errorf("parseProxy = %+v", got)
	}
}
