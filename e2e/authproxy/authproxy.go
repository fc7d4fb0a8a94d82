// Package authproxy puts the Docker registry token flow in front of a plain-http registry, so
// that e2e tests can run flatbed with real credentials and then look for them where they must
// never be: logs, events, notification lines, errors and the store.
//
// GET /v2/ (and every other request without a valid bearer token) answers 401 with
// `WWW-Authenticate: Bearer realm="http://HOST/token",service="flatbed-e2e"`. GET /token
// checks HTTP basic auth against User and Password and returns a fresh token
// {"token": "...", "expires_in": 300}. Requests with `Authorization: Bearer <token>` are
// reverse-proxied to the registry with the Authorization header removed.
package authproxy

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Service is the service name in the Bearer challenge.
const Service = "flatbed-e2e"

// Proxy is one running token-flow proxy.
type Proxy struct {
	Host     string // "127.0.0.1:port"
	User     string
	Password string

	upstream *url.URL
	srv      *http.Server

	mu       sync.Mutex
	tokens   map[string]bool
	granted  int
	denied   int
	rejected int // requests without a valid bearer token
	proxied  int
}

// Start serves the token flow for the plain-http registry at upstream ("host:port") on a
// loopback port with user and password; it stops on t.Cleanup.
func Start(t testing.TB, upstream, user, password string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		Host:     l.Addr().String(),
		User:     user,
		Password: password,
		upstream: &url.URL{Scheme: "http", Host: upstream},
		tokens:   map[string]bool{},
	}
	p.srv = &http.Server{Handler: p}
	go func() { _ = p.srv.Serve(l) }()
	t.Cleanup(func() { _ = p.srv.Close() })
	return p
}

// Secret returns a distinctive random string starting with prefix, easy to grep for.
func Secret(prefix string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b)
}

// URL returns "http://" + Host.
func (p *Proxy) URL() string { return "http://" + p.Host }

// BasicAuth returns base64("user:password"), as in a docker config's "auth" field and an
// HTTP Basic Authorization header.
func (p *Proxy) BasicAuth() string {
	return base64.StdEncoding.EncodeToString([]byte(p.User + ":" + p.Password))
}

// Tokens returns every token handed out so far.
func (p *Proxy) Tokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for tok := range p.tokens {
		out = append(out, tok)
	}
	return out
}

// Stats are counts of what the proxy did.
type Stats struct {
	Granted  int // tokens issued
	Denied   int // token requests with wrong or missing credentials
	Rejected int // registry requests answered 401 (no or unknown bearer token)
	Proxied  int // registry requests passed on with a valid token
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Granted: p.granted, Denied: p.denied, Rejected: p.rejected, Proxied: p.proxied}
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		p.token(w, r)
		return
	}
	auth := r.Header.Get("Authorization")
	tok, isBearer := strings.CutPrefix(auth, "Bearer ")
	p.mu.Lock()
	ok := isBearer && p.tokens[tok]
	if ok {
		p.proxied++
	} else {
		p.rejected++
	}
	p.mu.Unlock()
	if !ok {
		challenge := fmt.Sprintf(`Bearer realm="http://%s/token",service=%q`, p.Host, Service)
		if scope := scopeOf(r); scope != "" {
			challenge += fmt.Sprintf(",scope=%q", scope)
		}
		w.Header().Set("WWW-Authenticate", challenge)
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.upstream)
			pr.Out.Host = pr.In.Host // the registry builds Location headers from Host: keep the proxy's
			pr.Out.Header.Del("Authorization")
		},
	}
	proxy.ServeHTTP(w, r)
}

// scopeOf is the repository scope a registry request needs, as real token servers announce it.
func scopeOf(r *http.Request) string {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/")
	if !ok {
		return ""
	}
	for _, marker := range []string{"/manifests/", "/blobs/", "/tags/"} {
		if i := strings.Index(rest, marker); i > 0 {
			action := "pull"
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				action = "pull,push"
			}
			return "repository:" + rest[:i] + ":" + action
		}
	}
	return ""
}

func (p *Proxy) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// No OAuth2 POST flow: clients fall back to GET with basic auth on 404.
		writeError(w, http.StatusNotFound, "UNSUPPORTED", "use GET with basic auth")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != p.User || pass != p.Password || r.URL.Query().Get("service") != Service {
		p.mu.Lock()
		p.denied++
		p.mu.Unlock()
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "incorrect username or password")
		return
	}
	tok := Secret("e2e-T0ken-")
	p.mu.Lock()
	p.tokens[tok] = true
	p.granted++
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 300})
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
}
