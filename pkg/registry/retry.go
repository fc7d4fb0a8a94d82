package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RetryBaseEnv, when set to a Go duration (e.g. "50ms"), replaces the first wait of
// DefaultBackoff; the later waits and the cap keep their proportions. Meant for tests and
// for impatient operators; WithRetryBackoff wins over it.
const RetryBaseEnv = "FLATBED_REGISTRY_RETRY_BASE"

// StallTimeoutEnv, when set to a Go duration, replaces DefaultStallTimeout.
const StallTimeoutEnv = "FLATBED_REGISTRY_STALL_TIMEOUT"

// DefaultStallTimeout is how long a registry may send nothing, before the answer's headers
// or in the middle of a body, before the request fails (as a temporary error, so it is
// retried). Slow registries are fine; silent ones do not hold a worker forever.
var DefaultStallTimeout = 2 * time.Minute

func stallTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(StallTimeoutEnv)); err == nil && d > 0 {
		return d
	}
	return DefaultStallTimeout
}

// MaxRetryAfter bounds the wait a Retry-After answer asks for: a registry cannot park a
// worker for longer than this per retry.
var MaxRetryAfter = time.Minute

// defaultBackoff is DefaultBackoff, scaled by RetryBaseEnv.
func defaultBackoff() remote.Backoff {
	b := DefaultBackoff
	if v := os.Getenv(RetryBaseEnv); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			scale := float64(d) / float64(b.Duration)
			b.Duration = d
			b.Cap = time.Duration(float64(b.Cap) * scale)
		}
	}
	return b
}

// retryTransport retries answers in codes (429, 5xx, …) with back-off, waiting at least as
// long as the registry's Retry-After asks (up to maxWait). Its waits end with the request's
// context. Network errors are left to go-containerregistry's own retry transport around it.
type retryTransport struct {
	inner   http.RoundTripper
	backoff remote.Backoff // Steps is the number of tries
	codes   []int
	maxWait time.Duration
	stall   time.Duration // 0 = no stall detection
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	b := t.backoff
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	try := req
	for {
		resp, err := t.once(try)
		if err != nil || !slices.Contains(t.codes, resp.StatusCode) || !replayable || b.Steps <= 1 {
			return resp, err
		}
		wait := b.Step()
		if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			wait = max(wait, min(ra, t.maxWait))
		}
		// Drain a little so the connection can be reused; error bodies are small.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		slog.Default().Warn("registry busy, retrying", "status", resp.Status, "method", req.Method,
			"host", req.URL.Host, "path", req.URL.Path, "retry_after", resp.Header.Get("Retry-After"), "wait", wait)
		timer := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			timer.Stop()
			return nil, req.Context().Err()
		case <-timer.C:
		}
		try = req.Clone(req.Context())
		if req.GetBody != nil {
			if try.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// errStalled is a registry that sent nothing for too long. It is temporary, so
// go-containerregistry retries a request whose headers never came.
type errStalled struct{ d time.Duration }

func (e errStalled) Error() string   { return fmt.Sprintf("the registry sent nothing for %s", e.d) }
func (e errStalled) Timeout() bool   { return true }
func (e errStalled) Temporary() bool { return true }

// once makes one request, failing it when the registry sends nothing for t.stall: neither
// the headers nor, later, any body bytes.
func (t *retryTransport) once(req *http.Request) (*http.Response, error) {
	if t.stall <= 0 {
		return t.inner.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	stalled := errStalled{t.stall}
	timer := time.AfterFunc(t.stall, func() { cancel(stalled) })
	resp, err := t.inner.RoundTrip(req.WithContext(ctx))
	if err != nil {
		timer.Stop()
		cause := context.Cause(ctx)
		cancel(nil)
		if cause == error(stalled) {
			return nil, stalled
		}
		return nil, err
	}
	timer.Reset(t.stall)
	resp.Body = &stallBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel, timer: timer, stall: t.stall}
	return resp, nil
}

type stallBody struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	stall  time.Duration
}

func (b *stallBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.stall)
	}
	if err != nil && err != io.EOF {
		var se errStalled
		if cause := context.Cause(b.ctx); errors.As(cause, &se) {
			err = fmt.Errorf("%w (%v)", se, err)
		}
	}
	return n, err
}

func (b *stallBody) Close() error {
	b.timer.Stop()
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}
