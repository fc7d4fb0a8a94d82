package registry

import (
	"context"
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
// DefaultBackoff; the later waits and the cap keep their proportions (the registry timeout
// does not change). Meant for tests and for impatient operators; WithRetryBackoff wins over it.
const RetryBaseEnv = "FLATBED_REGISTRY_RETRY_BASE"

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

// retryTransport is the one place requests are retried (see the package doc): a temporary
// network fault (refused, reset, stalled, …) or an answer in codes (429, 5xx, …) is tried
// again with back-off, waiting at least as long as the registry's Retry-After asks, while the
// operation's budget lasts. Its waits end with the request's context. Requests whose body
// cannot be replayed are not retried here; Do runs their operation again.
type retryTransport struct {
	inner  http.RoundTripper
	budget *budget        // the operation's, when the request's context carries none (see withBudget)
	fresh  func() *budget // else a budget for the request alone
	codes  []int
	stall  time.Duration // 0 = no stall detection
	// retried says whether a fault is tried again (nil: Temporary ones); see WithFinal.
	retried func(error) bool
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	budget := budgetFrom(req.Context())
	if budget == nil {
		budget = t.budget
	}
	if budget == nil {
		budget = t.fresh()
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	try := req
	for n := 1; ; n++ {
		resp, err := t.once(try)
		var fault error
		retryAfter := ""
		switch {
		case err != nil:
			if !t.retry(err) || req.Context().Err() != nil {
				return nil, err
			}
			fault = err
		case slices.Contains(t.codes, resp.StatusCode):
			retryAfter = resp.Header.Get("Retry-After")
		default:
			return resp, nil
		}
		if !replayable {
			return resp, err
		}
		wait, ok := budget.fault(n, retryAfter)
		if !ok {
			return resp, err
		}
		log := slog.Default().With("method", req.Method, "host", req.URL.Host, "path", req.URL.Path, "try", n, "wait", wait)
		if resp != nil {
			// Drain a little so the connection can be reused; error bodies are small.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			log.Warn("registry busy, retrying", "status", resp.Status, "retry_after", retryAfter)
		} else {
			log.Warn("registry fault, retrying", "reason", Reason(fault), "err", fault)
		}
		if err := sleep(req.Context(), wait); err != nil {
			return nil, err
		}
		try = req.Clone(req.Context())
		if req.GetBody != nil {
			if try.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

func (t *retryTransport) retry(err error) bool {
	if t.retried == nil {
		return Temporary(err)
	}
	return t.retried(err)
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// parseRetryAfter parses a Retry-After value: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
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
