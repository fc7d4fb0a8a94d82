package registry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// pingCache answers go-containerregistry's ping (GET /v2/, which asks a registry what
// authentication it wants) from the first definitive answer of that scheme://host: 200 or 401
// with its challenge, or a port that does not speak TLS (the https half of the ping of a
// plain-HTTP registry). go-containerregistry pings once per repository it meets; with this a
// process pings each registry once. Other answers and faults are not kept: the next ping asks
// again. Concurrent pings of one registry wait for the first instead of pinging too.
type pingCache struct {
	inner http.RoundTripper

	mu      sync.Mutex
	answers map[string]*pingEntry // by scheme://host
}

type pingEntry struct {
	gate   chan struct{} // held by the one ping under way
	answer *pingAnswer   // nil until a definitive answer came
}

type pingAnswer struct {
	status int
	header http.Header
	body   []byte
	scheme string // the answer came over: go-containerregistry uses it from then on
	err    error  // a port that does not speak TLS
}

// maxPingBody bounds what is kept of an answer's body: the challenge is in the headers.
const maxPingBody = 64 << 10

func isPing(req *http.Request) bool {
	return req.Method == http.MethodGet && req.URL.Path == "/v2/" && req.URL.RawQuery == "" && req.Header.Get("Authorization") == ""
}

func (c *pingCache) RoundTrip(req *http.Request) (*http.Response, error) {
	if !isPing(req) {
		return c.inner.RoundTrip(req)
	}
	e := c.entry(req.URL.Scheme + "://" + req.URL.Host)
	select {
	case e.gate <- struct{}{}:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	defer func() { <-e.gate }()
	if e.answer != nil {
		return e.answer.response(req)
	}
	resp, err := c.inner.RoundTrip(req)
	switch {
	case err != nil:
		if notTLS(err) {
			e.answer = &pingAnswer{err: err}
		}
		return nil, err
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized:
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPingBody))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	scheme := req.URL.Scheme
	if resp.Request != nil { // a transport below may have sent it otherwise
		scheme = resp.Request.URL.Scheme
	}
	e.answer = &pingAnswer{status: resp.StatusCode, header: resp.Header.Clone(), body: body, scheme: scheme}
	return e.answer.response(req)
}

func (c *pingCache) entry(key string) *pingEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.answers == nil {
		c.answers = map[string]*pingEntry{}
	}
	e, ok := c.answers[key]
	if !ok {
		e = &pingEntry{gate: make(chan struct{}, 1)}
		c.answers[key] = e
	}
	return e
}

// response is a fresh copy of the answer for req.
func (a *pingAnswer) response(req *http.Request) (*http.Response, error) {
	if a.err != nil {
		return nil, a.err
	}
	if a.scheme != req.URL.Scheme {
		req = req.Clone(req.Context())
		req.URL.Scheme = a.scheme
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", a.status, http.StatusText(a.status)),
		StatusCode:    a.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        a.header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(a.body)),
		ContentLength: int64(len(a.body)),
		Request:       req,
	}, nil
}
