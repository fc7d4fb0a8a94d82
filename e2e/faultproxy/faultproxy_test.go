package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var blob = bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB

func start(t *testing.T) *Proxy {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(blob)
	}))
	t.Cleanup(up.Close)
	p, err := Start(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func get(t *testing.T, p *Proxy, path string) (*http.Response, []byte, error) {
	t.Helper()
	// A fresh transport per request: a cut connection must not be reused.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + p.Host + path)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestStatusTimesAndCounts(t *testing.T) {
	p := start(t)
	a := p.Add(Rule{Method: http.MethodGet, Path: `/blobs/`, Skip: 1, Times: 2, Fault: TooManyRequests(3)})
	var codes []int
	for range 5 {
		resp, _, err := get(t, p, "/v2/x/blobs/sha256:1")
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 429 && resp.Header.Get("Retry-After") != "3" {
			t.Errorf("Retry-After = %q", resp.Header.Get("Retry-After"))
		}
	}
	if want := []int{200, 429, 429, 200, 200}; !slices.Equal(codes, want) {
		t.Errorf("codes %v, want %v", codes, want)
	}
	if a.Seen() != 5 || a.Applied() != 2 || len(a.PassedAt()) != 3 {
		t.Errorf("seen %d applied %d passed %d", a.Seen(), a.Applied(), len(a.PassedAt()))
	}
	if resp, _, _ := get(t, p, "/v2/x/manifests/1"); resp.StatusCode != 200 || a.Seen() != 5 {
		t.Error("rule matched another path")
	}
	p.Clear()
	a = p.Add(Rule{Path: `.`, Fault: Status(503)})
	if resp, _, _ := get(t, p, "/v2/"); resp.StatusCode != 503 {
		t.Errorf("forever rule: %d", resp.StatusCode)
	}
	p.Remove(a)
	if resp, _, _ := get(t, p, "/v2/"); resp.StatusCode != 200 {
		t.Errorf("after Remove: %d", resp.StatusCode)
	}
}

func TestBodyFaults(t *testing.T) {
	p := start(t)
	p.Add(Rule{Path: `/reset$`, Fault: Reset(1000)})
	p.Add(Rule{Path: `/truncate$`, Fault: Truncate(1000)})
	p.Add(Rule{Path: `/corrupt$`, Fault: Corrupt(10, -1)})
	p.Add(Rule{Path: `/serve$`, Fault: Serve([]byte("other"), "text/plain")})
	p.Add(Rule{Path: `/slow$`, Fault: Slow(100*time.Millisecond, 4096, 20*time.Millisecond)})

	_, b, err := get(t, p, "/reset")
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reset: %d bytes, err %v", len(b), err)
	}
	_, b, err = get(t, p, "/truncate")
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != 1000 {
		t.Errorf("truncate: %d bytes, err %v", len(b), err)
	}
	_, b, err = get(t, p, "/corrupt")
	if err != nil || len(b) != len(blob) || bytes.Equal(b, blob) || b[10] != blob[10]^0xff || b[len(b)-1] != blob[len(b)-1]^0xff {
		t.Errorf("corrupt: %d bytes, err %v", len(b), err)
	}
	resp, b, err := get(t, p, "/serve")
	if err != nil || string(b) != "other" || !strings.HasPrefix(resp.Header.Get("Docker-Content-Digest"), "sha256:") {
		t.Errorf("serve: %q, %v", b, err)
	}
	start := time.Now()
	_, b, err = get(t, p, "/slow")
	if err != nil || !bytes.Equal(b, blob) || time.Since(start) < 160*time.Millisecond {
		t.Errorf("slow: %d bytes in %s, err %v", len(b), time.Since(start), err)
	}
	p.Add(Rule{Path: `/count$`})
	if _, b, err := get(t, p, "/count"); err != nil || !bytes.Equal(b, blob) {
		t.Errorf("zero fault: %d bytes, %v", len(b), err)
	}
	if len(p.Log()) != 6 {
		t.Errorf("log: %q", p.Log())
	}
}
