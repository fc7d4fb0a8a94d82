package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// budget is what one operation (resolving an image, fetching a layer, pushing a thin image)
// may spend on temporary registry faults: its requests retry, and Do runs it again, until
// timeout has passed since its first fault (or, when backoff.Steps > 0, after that many
// faults: tests). Every request of the operation draws on the same budget.
type budget struct {
	backoff remote.Backoff
	timeout time.Duration
	maxWait time.Duration // the most a Retry-After answer may make one wait

	mu         sync.Mutex
	first      time.Time // of the first fault; zero until then
	faults     int
	spent      bool
	timedOut   bool   // spent by the timeout, not by backoff.Steps
	retryAfter string // the last Retry-After the registry sent
}

// budgetKey carries an operation's budget in the context of its requests, so that a
// transport kept across operations (a Client's) charges each request to its own operation.
type budgetKey struct{}

func withBudget(ctx context.Context, b *budget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

func budgetFrom(ctx context.Context) *budget {
	b, _ := ctx.Value(budgetKey{}).(*budget)
	return b
}

// fault records a fault on the n-th try (from 1) of one request or operation and says how
// long to wait before the next try, or false when the budget is spent. retryAfter is the
// answer's Retry-After header, if any: the wait is at least what it asks, up to maxWait. No
// wait goes past the timeout: the last try is made when it runs out.
func (b *budget) fault(n int, retryAfter string) (time.Duration, bool) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spent {
		return 0, false
	}
	if b.first.IsZero() {
		b.first = now
	}
	b.faults++
	if retryAfter != "" {
		b.retryAfter = retryAfter
	}
	deadline := b.first.Add(b.timeout)
	switch {
	case b.backoff.Steps > 0 && b.faults >= b.backoff.Steps:
		b.spent = true
	case !now.Before(deadline):
		b.spent, b.timedOut = true, true
	}
	if b.spent {
		return 0, false
	}
	wait := step(b.backoff, n)
	if ra, ok := parseRetryAfter(retryAfter, now); ok {
		wait = max(wait, min(ra, b.maxWait))
	}
	return min(wait, deadline.Sub(now)), true
}

// step is the wait after the n-th failed try: Duration·Factorⁿ⁻¹, at most Cap, ±Jitter.
func step(b remote.Backoff, n int) time.Duration {
	f := b.Factor
	if f < 1 {
		f = 1
	}
	d := float64(b.Duration) * math.Pow(f, float64(n-1))
	if b.Cap > 0 && d > float64(b.Cap) {
		d = float64(b.Cap)
	}
	if b.Jitter > 0 {
		d += (rand.Float64()*2 - 1) * b.Jitter * d
	}
	return time.Duration(d)
}

// gaveUp wraps last, the fault after which the budget was spent, with what was spent.
func (b *budget) gaveUp(last error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return &gaveUp{err: last, tries: b.faults, elapsed: time.Since(b.first), timeout: b.timeout, timedOut: b.timedOut, retryAfter: b.retryAfter}
}

// gaveUp is an operation whose temporary faults outlasted its budget. It is Final.
type gaveUp struct {
	err        error
	tries      int
	elapsed    time.Duration
	timeout    time.Duration
	timedOut   bool
	retryAfter string
}

func (e *gaveUp) Error() string {
	var s strings.Builder
	tries := "tries"
	if e.tries == 1 {
		tries = "try"
	}
	fmt.Fprintf(&s, "%v; gave up after %d failed %s in %s", e.err, e.tries, tries, e.elapsed.Round(time.Millisecond))
	if e.timedOut {
		fmt.Fprintf(&s, ": the registry timeout (--registry-timeout %s) ran out", e.timeout)
	} else {
		s.WriteString(": the retry limit was reached")
	}
	if e.retryAfter != "" {
		fmt.Fprintf(&s, "; the registry last asked to wait %s (Retry-After)", e.retryAfter)
	}
	return s.String()
}

func (e *gaveUp) Unwrap() error { return e.err }

func gaveUpOn(err error) bool {
	var g *gaveUp
	return errors.As(err, &g)
}
