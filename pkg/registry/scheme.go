package registry

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ContextWithScheme says that the requests made under ctx for registry (host[:port]) go with
// scheme, "http" or "https": the one its image is named with. go-containerregistry pings a
// registry over https first and falls back to http for an insecure one (and for loopback
// and private addresses), so without it a plain-http registry is greeted with a TLS
// handshake, and an https one may be read over plain http. Other hosts (a token service, a
// storage a blob is redirected to) keep the scheme they are given.
func ContextWithScheme(ctx context.Context, scheme, registry string) context.Context {
	schemes := map[string]string{}
	if outer, ok := ctx.Value(schemesKey{}).(map[string]string); ok {
		for h, s := range outer {
			schemes[h] = s
		}
	}
	schemes[strings.ToLower(registry)] = scheme
	return context.WithValue(ctx, schemesKey{}, schemes)
}

type schemesKey struct{}

// schemeTransport sends each request with the scheme its context names for its host.
type schemeTransport struct {
	inner http.RoundTripper
}

func (t *schemeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	schemes, _ := req.Context().Value(schemesKey{}).(map[string]string)
	want := schemes[strings.ToLower(req.URL.Host)]
	if want == "" || want == req.URL.Scheme {
		return t.inner.RoundTrip(req)
	}
	r := req.Clone(req.Context()) // a RoundTripper must not change the request it is given
	r.URL.Scheme = want
	return t.inner.RoundTrip(r)
}

// withSchemes puts schemeTransport under every transport the options make (see
// ContextWithScheme); a *transport.Wrapper is left alone: its caller opted out of all
// wrapping.
func withSchemes(o *options) {
	if _, ok := o.transport.(*transport.Wrapper); ok {
		return
	}
	if _, ok := o.transport.(*schemeTransport); ok {
		return
	}
	inner := o.transport
	if inner == nil {
		inner = defaultTransport
	}
	o.transport = &schemeTransport{inner: withProxies(&certAskTransport{inner})} // DUCC_<R>_PROXY below the scheme
}
