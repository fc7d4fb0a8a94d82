package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestRetryAfterIsHonoured(t *testing.T) {
	var n atomic.Int32
	var first time.Time
	var gap time.Duration
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		gap = time.Since(first)
		_, _ = io.WriteString(w, "ok")
	}))
	defer s.Close()
	rt := testTransport(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}, time.Minute, 0)
	resp, err := (&http.Client{Transport: rt}).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || n.Load() != 2 {
		t.Fatalf("status %d after %d requests", resp.StatusCode, n.Load())
	}
	if gap < 900*time.Millisecond {
		t.Errorf("retried after %s; Retry-After asked for 1s", gap)
	}
}

func TestRetryGivesUpAndStopsWithContext(t *testing.T) {
	s, n := busyRegistry(t, "30")
	rt := testTransport(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}, time.Minute, 0)
	rt.budget.maxWait = 5 * time.Millisecond
	resp, err := (&http.Client{Transport: rt}).Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || n.Load() != 3 {
		t.Errorf("status %d after %d requests, want 503 after 3 (the bound)", resp.StatusCode, n.Load())
	}
	rt = testTransport(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}, time.Minute, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	start := time.Now()
	if _, err := (&http.Client{Transport: rt}).Do(req); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("err %v after %s; want the context's end, soon", err, time.Since(start))
	}
}

func TestStalledRegistry(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/headers" {
			time.Sleep(300 * time.Millisecond)
		}
		w.Header().Set("Content-Length", "10")
		_, _ = io.WriteString(w, "12345")
		w.(http.Flusher).Flush()
		time.Sleep(300 * time.Millisecond)
	}))
	defer s.Close()
	rt := testTransport(remote.Backoff{Steps: 1}, time.Minute, 100*time.Millisecond)
	c := &http.Client{Transport: rt}
	if _, err := c.Get(s.URL + "/headers"); !Temporary(err) || Reason(err) == "" {
		t.Errorf("no headers: err %v, Temporary %v, Reason %q", err, Temporary(err), Reason(err))
	}
	resp, err := c.Get(s.URL + "/body")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if string(b) != "12345" || !Temporary(err) || !strings.HasPrefix(Reason(err), "the registry stalled: it sent nothing for 1") ||
		!strings.HasSuffix(Reason(err), "(the stall timeout is 100ms)") {
		t.Errorf("body stall: %q, err %v, Reason %q", b, err, Reason(err))
	}
}

func TestClassify(t *testing.T) {
	if Temporary(context.Canceled) || !Temporary(io.ErrUnexpectedEOF) || Temporary(errors.New("x")) {
		t.Error("Temporary misclassifies")
	}
	if d, ok := parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", time.Date(2015, 10, 21, 7, 27, 58, 0, time.UTC)); !ok || d != 2*time.Second {
		t.Errorf("retryAfter date = %s, %v", d, ok)
	}
	if _, ok := parseRetryAfter("soon", time.Now()); ok {
		t.Error("retryAfter accepted garbage")
	}
}

// testTransport is a retryTransport over http.DefaultTransport with its own budget.
func testTransport(b remote.Backoff, timeout, stall time.Duration) *retryTransport {
	return &retryTransport{inner: http.DefaultTransport, budget: &budget{backoff: b, timeout: timeout, maxWait: time.Minute},
		codes: RetryStatusCodes, stall: stall}
}
