// Package faultproxy is a reverse proxy in front of a real registry that injects the faults
// registries and networks really have: error answers (5xx, 429 with Retry-After, 404),
// connections reset or closed in the middle of a body, bodies with flipped bytes, a different
// manifest for one read, and slow answers. Tests set and clear rules while it runs and count
// the requests each rule saw.
package faultproxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// Fault is what a rule does to a matching request. The zero Fault passes the request through
// (a rule with it only counts requests).
type Fault struct {
	// Status answers with this status and a registry-style JSON error body, without asking
	// the registry. Code is the error code in the body ("UNAVAILABLE" when empty).
	Status int
	Code   string
	// RetryAfter is the Retry-After header sent with Status ("" = none).
	RetryAfter string

	// Body answers with these bytes instead of the registry's (status 200), with
	// ContentType and a Docker-Content-Digest of the bytes: e.g. another manifest.
	Body        []byte
	ContentType string

	// Cut sends the headers (with the full Content-Length) and CutAfter body bytes, then
	// drops the connection: CutReset resets it (RST), CutClose closes it normally (FIN), so
	// the body is truncated.
	Cut      CutMode
	CutAfter int64
	// Corrupt flips the byte at each of these offsets of the body (negative offsets count
	// from the end); the length does not change.
	Corrupt []int64

	// Delay waits this long before answering at all.
	Delay time.Duration
	// TrickleEvery sends the body in TrickleChunk-byte pieces with this pause between them.
	TrickleEvery time.Duration
	TrickleChunk int
}

// CutMode is how Fault.Cut drops a connection.
type CutMode int

// Cut modes.
const (
	NoCut    CutMode = iota
	CutReset         // RST: the client reads "connection reset by peer"
	CutClose         // FIN before the promised end: the client reads "unexpected EOF"
)

// Status answers code with a JSON registry error.
func Status(code int) Fault { return Fault{Status: code} }

// TooManyRequests answers 429 with Retry-After: seconds.
func TooManyRequests(seconds int) Fault {
	f := Status(http.StatusTooManyRequests)
	f.Code, f.RetryAfter = "TOOMANYREQUESTS", strconv.Itoa(seconds)
	return f
}

// NotFound answers 404 with code (MANIFEST_UNKNOWN, BLOB_UNKNOWN, …).
func NotFound(code string) Fault {
	f := Status(http.StatusNotFound)
	f.Code = code
	return f
}

// Reset resets the connection after k body bytes.
func Reset(k int64) Fault { return Fault{Cut: CutReset, CutAfter: k} }

// Truncate promises the whole body and sends only k bytes.
func Truncate(k int64) Fault { return Fault{Cut: CutClose, CutAfter: k} }

// Corrupt flips the bytes at offsets (negative: from the end).
func Corrupt(offsets ...int64) Fault { return Fault{Corrupt: offsets} }

// Serve answers with body as contentType.
func Serve(body []byte, contentType string) Fault {
	return Fault{Body: body, ContentType: contentType}
}

// Slow waits delay before answering, then sends the body chunk bytes at a time every pause.
func Slow(delay time.Duration, chunk int, pause time.Duration) Fault {
	return Fault{Delay: delay, TrickleChunk: chunk, TrickleEvery: pause}
}

func (f Fault) String() string {
	switch {
	case f.Status != 0:
		return fmt.Sprintf("status %d", f.Status)
	case f.Body != nil:
		return fmt.Sprintf("serve %d other bytes", len(f.Body))
	case f.Cut == CutReset:
		return fmt.Sprintf("reset after %d bytes", f.CutAfter)
	case f.Cut == CutClose:
		return fmt.Sprintf("truncate after %d bytes", f.CutAfter)
	case len(f.Corrupt) > 0:
		return fmt.Sprintf("corrupt %d bytes", len(f.Corrupt))
	case f.Delay > 0 || f.TrickleEvery > 0:
		return fmt.Sprintf("slow (%s, then %d bytes every %s)", f.Delay, f.TrickleChunk, f.TrickleEvery)
	}
	return "pass (counted)"
}

// Rule selects requests and says what to do with them.
type Rule struct {
	Method string // "" matches every method
	Path   string // regular expression matched against the URL path, e.g. `/manifests/1\.0$`
	Skip   int    // let the first Skip matching requests through untouched
	Times  int    // then apply Fault to this many requests; 0 = to every one after Skip
	Fault  Fault
}

// Active is a rule in force. Its counters are safe to read while the proxy runs.
type Active struct {
	rule Rule
	re   *regexp.Regexp

	mu      sync.Mutex
	seen    int
	applied []time.Time
	passed  []time.Time // matching requests let through (skipped or after Times)
}

// Seen is the number of requests the rule matched, faulted or not.
func (a *Active) Seen() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen
}

// Applied is the number of requests the fault was applied to.
func (a *Active) Applied() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.applied)
}

// AppliedAt returns when the fault was applied, in order.
func (a *Active) AppliedAt() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.applied...)
}

// PassedAt returns when matching requests were let through untouched, in order.
func (a *Active) PassedAt() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.passed...)
}

// take counts a matching request and says whether to apply the fault to it.
func (a *Active) take(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seen++
	n := a.seen - a.rule.Skip // 1-based among the requests after Skip
	if n >= 1 && (a.rule.Times == 0 || n <= a.rule.Times) {
		a.applied = append(a.applied, now)
		return true
	}
	a.passed = append(a.passed, now)
	return false
}

// Proxy is a running fault-injecting reverse proxy.
type Proxy struct {
	Host string // "127.0.0.1:port": use it as the registry host

	upstream *url.URL
	srv      *http.Server
	rp       *httputil.ReverseProxy
	client   *http.Client

	mu    sync.Mutex
	rules []*Active
	log   []string
}

// Start listens on a free loopback port and proxies to upstream ("host:port" or an http URL).
func Start(upstream string) (*Proxy, error) {
	if !regexp.MustCompile(`^https?://`).MatchString(upstream) {
		upstream = "http://" + upstream
	}
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: upstream %q: %w", upstream, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	p := &Proxy{
		Host:     ln.Addr().String(),
		upstream: u,
		rp:       httputil.NewSingleHostReverseProxy(u),
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
	}
	p.rp.Transport = tr
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the proxy and drops its connections.
func (p *Proxy) Close() error { return p.srv.Close() }

// Add puts r in force (after the rules already there: the first matching rule wins).
func (p *Proxy) Add(r Rule) *Active {
	a := &Active{rule: r, re: regexp.MustCompile(r.Path)}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, a)
	return a
}

// Remove takes one rule out of force.
func (p *Proxy) Remove(a *Active) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.rules {
		if r == a {
			p.rules = append(p.rules[:i], p.rules[i+1:]...)
			return
		}
	}
}

// Clear takes every rule out of force: the proxy passes everything through.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Log returns one line per request: method, path and what was done.
func (p *Proxy) Log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

func (p *Proxy) match(r *http.Request) (*Active, bool) {
	p.mu.Lock()
	rules := append([]*Active(nil), p.rules...)
	p.mu.Unlock()
	for _, a := range rules {
		if (a.rule.Method == "" || a.rule.Method == r.Method) && a.re.MatchString(r.URL.Path) {
			return a, a.take(time.Now())
		}
	}
	return nil, false
}

func (p *Proxy) record(r *http.Request, what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, fmt.Sprintf("%s %s %s: %s", time.Now().Format("15:04:05.000"), r.Method, r.URL.Path, what))
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, apply := p.match(r)
	if !apply {
		p.record(r, "pass")
		p.rp.ServeHTTP(w, r)
		return
	}
	f := a.rule.Fault
	p.record(r, f.String())
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case f.Status != 0:
		code := f.Code
		if code == "" {
			code = "UNAVAILABLE"
		}
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.Status)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"injected by faultproxy"}]}`+"\n", code)
		}
		return
	case f.Body != nil:
		sum := sha256.Sum256(f.Body)
		w.Header().Set("Content-Type", f.ContentType)
		w.Header().Set("Docker-Content-Digest", "sha256:"+hex.EncodeToString(sum[:]))
		w.Header().Set("Content-Length", strconv.Itoa(len(f.Body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(f.Body)
		}
		return
	}
	if f.Cut == NoCut && len(f.Corrupt) == 0 && f.TrickleEvery <= 0 {
		p.rp.ServeHTTP(w, r) // only counted (and maybe delayed)
		return
	}
	resp, body, err := p.fetch(r)
	if err != nil {
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	switch {
	case f.Cut != NoCut:
		p.cut(w, resp, body, max(0, min(f.CutAfter, int64(len(body)))), f.Cut == CutReset)
	case len(f.Corrupt) > 0:
		body = bytes.Clone(body)
		for _, off := range f.Corrupt {
			if off < 0 {
				off += int64(len(body))
			}
			if off >= 0 && off < int64(len(body)) {
				body[off] ^= 0xff
			}
		}
		writeResponse(w, resp, body, 0, 0)
	default:
		writeResponse(w, resp, body, f.TrickleChunk, f.TrickleEvery)
	}
}

// fetch asks the registry and reads the whole answer (test images are small).
func (p *Proxy) fetch(r *http.Request) (*http.Response, []byte, error) {
	u := *p.upstream
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
	if err != nil {
		return nil, nil, err
	}
	out.Header = r.Header.Clone()
	resp, err := p.client.Do(out)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func copyHeaders(dst http.Header, resp *http.Response, length int) {
	for k, v := range resp.Header {
		dst[k] = v
	}
	if length >= 0 {
		dst.Set("Content-Length", strconv.Itoa(length))
	}
}

func writeResponse(w http.ResponseWriter, resp *http.Response, body []byte, chunk int, pause time.Duration) {
	length := len(body)
	if resp.Request.Method == http.MethodHead {
		length = int(resp.ContentLength)
	}
	copyHeaders(w.Header(), resp, length)
	w.WriteHeader(resp.StatusCode)
	if chunk <= 0 || pause <= 0 {
		_, _ = w.Write(body)
		return
	}
	fl, _ := w.(http.Flusher)
	for len(body) > 0 {
		n := min(chunk, len(body))
		if _, err := w.Write(body[:n]); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		body = body[n:]
		if len(body) > 0 {
			time.Sleep(pause)
		}
	}
}

// cut sends the headers with the full Content-Length and k body bytes, then drops the
// connection: with an RST when reset, else with a normal close.
func (p *Proxy) cut(w http.ResponseWriter, resp *http.Response, body []byte, k int64, reset bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "faultproxy: cannot hijack", http.StatusInternalServerError)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	h := http.Header{}
	copyHeaders(h, resp, len(body))
	h.Set("Connection", "close")
	bw := bufio.NewWriter(conn)
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	_ = h.Write(bw)
	bw.WriteString("\r\n")
	bw.Write(body[:k])
	_ = bw.Flush()
	_ = buf.Flush()
	if reset {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST instead of FIN
		}
		// Give the client a moment to read what was sent, so the reset comes mid-body.
		time.Sleep(20 * time.Millisecond)
	}
}
