package registry

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// A kept ping answer is replayed as it came, over the scheme it came over: go-containerregistry
// talks to the registry over that scheme from then on.
func TestPingCacheReplaysTheScheme(t *testing.T) {
	var asked int
	c := &pingCache{inner: roundTripper(func(r *http.Request) (*http.Response, error) {
		asked++
		sent := r.Clone(r.Context())
		sent.URL.Scheme = "http" // as a transport below that knows the registry speaks http
		return &http.Response{StatusCode: http.StatusUnauthorized, Request: sent,
			Header: http.Header{"Www-Authenticate": {`Bearer realm="http://r.example/token"`}},
			Body:   io.NopCloser(strings.NewReader("no"))}, nil
	})}
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodGet, "https://r.example/v2/", nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" || string(body) != "no" || resp.Request.URL.Scheme != "http" {
			t.Errorf("ping %d: %d %v %q over %s, want the first answer, over http", i, resp.StatusCode, resp.Header, body, resp.Request.URL.Scheme)
		}
	}
	if asked != 1 {
		t.Errorf("the registry was pinged %d times, want 1", asked)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://r.example/v2/x/manifests/1", nil)
	if _, err := c.RoundTrip(req); err != nil || asked != 2 {
		t.Errorf("a request other than a ping was answered from the cache (%v)", err)
	}
}
