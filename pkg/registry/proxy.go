package registry

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// DUCC_<R>_PROXY (ducc/lib/image.go, baseUrl): for a registry R of DUCC_AUTH_REGISTRIES, a
// pull-through proxy of it, "host[:port][/path]" (a Harbor proxy-cache project, say). Every
// registry request for the registry R's DUCC_<R>_IDENT names goes to the proxy instead, with
// the image's scheme: <scheme>://<host>/v2/<path>/<repository>/… for
// <scheme>://<registry>/v2/<repository>/…. DUCC asks a proxy anonymously, so R's
// DUCC_<R>_USER and DUCC_<R>_PASS are not needed then, and no credential for R (from the
// environment or the docker config) is offered to the proxy.

// proxyTarget is where the requests for one registry go.
type proxyTarget struct {
	ident  string // part of the registry host, as DUCC_<R>_IDENT (DUCC matches with Contains)
	host   string // the proxy's host[:port]
	path   string // the path under /v2/ the proxy serves the registry's repositories at, or ""
	scheme string // "" keeps the image's scheme
}

// parseProxy reads a DUCC_<R>_PROXY value: "[scheme://]host[:port][/path]".
func parseProxy(ident, value string) proxyTarget {
	p := proxyTarget{ident: ident}
	if s, rest, ok := strings.Cut(value, "://"); ok {
		p.scheme, value = s, rest
	}
	host, path, _ := strings.Cut(value, "/")
	p.host, p.path = host, strings.Trim(path, "/")
	return p
}

// proxies are the entries of DUCC_AUTH_REGISTRIES with a proxy.
func proxies() []proxyTarget {
	entries, _ := envEntries()
	var out []proxyTarget
	for _, e := range entries {
		if e.proxy != "" {
			out = append(out, parseProxy(e.ident, e.proxy))
		}
	}
	return out
}

// proxyFor is the proxy of the registry at host, if it has one.
func proxyFor(ps []proxyTarget, host string) (proxyTarget, bool) {
	for _, p := range ps {
		if strings.Contains(host, p.ident) {
			return p, true
		}
	}
	return proxyTarget{}, false
}

// proxyTransport sends the registry API requests (/v2/…) for a proxied registry to its proxy.
// Other requests (a token service, a storage a blob is redirected to) go where they are sent.
type proxyTransport struct {
	inner   http.RoundTripper
	proxies []proxyTarget
}

func (t *proxyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p, ok := proxyFor(t.proxies, req.URL.Host)
	if !ok || (req.URL.Path != "/v2" && !strings.HasPrefix(req.URL.Path, "/v2/")) {
		return t.inner.RoundTrip(req)
	}
	r := req.Clone(req.Context()) // a RoundTripper must not change the request it is given
	r.URL.Host, r.Host = p.host, p.host
	if p.scheme != "" {
		r.URL.Scheme = p.scheme
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v2/"); ok && rest != "" && p.path != "" {
		r.URL.Path = "/v2/" + p.path + "/" + rest
		r.URL.RawPath = ""
	}
	return t.inner.RoundTrip(r)
}

// withProxies puts proxyTransport under the options' transport when DUCC_<R>_PROXY names a
// proxy: below the scheme transport, so the image's scheme is the proxy's too.
func withProxies(inner http.RoundTripper) http.RoundTripper {
	ps := proxies()
	if len(ps) == 0 {
		return inner
	}
	return &proxyTransport{inner: inner, proxies: ps}
}

// proxiedAnonymous answers anonymously for a registry reached through a proxy, as DUCC does,
// so that no credential for it is sent to the proxy; other registries are looked up in inner.
type proxiedAnonymous struct {
	proxies []proxyTarget
	inner   authn.Keychain
}

func (k proxiedAnonymous) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

func (k proxiedAnonymous) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	if _, ok := proxyFor(k.proxies, target.RegistryStr()); ok {
		return authn.Anonymous, nil
	}
	return authn.Resolve(ctx, k.inner, target)
}
