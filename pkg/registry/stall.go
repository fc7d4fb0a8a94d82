package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

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

// errStalled is a registry that sent nothing for waited, which passed the stall timeout bound.
// It is temporary: the request is tried again.
type errStalled struct{ waited, bound time.Duration }

func (e errStalled) Error() string {
	return fmt.Sprintf("the registry stalled: it sent nothing for %s (the stall timeout is %s)", e.waited.Round(time.Millisecond), e.bound)
}
func (e errStalled) Timeout() bool   { return true }
func (e errStalled) Temporary() bool { return true }

// watchdog cancels a request whose registry has sent nothing for bound.
type watchdog struct {
	bound  time.Duration
	last   atomic.Int64 // unix nanoseconds of the last sign of life
	timer  *time.Timer
	cancel context.CancelCauseFunc
}

func newWatchdog(bound time.Duration, cancel context.CancelCauseFunc) *watchdog {
	w := &watchdog{bound: bound, cancel: cancel}
	w.alive()
	w.timer = time.AfterFunc(bound, w.check)
	return w
}

func (w *watchdog) alive() { w.last.Store(time.Now().UnixNano()) }

func (w *watchdog) check() {
	waited := time.Since(time.Unix(0, w.last.Load()))
	if waited < w.bound {
		w.timer.Reset(w.bound - waited)
		return
	}
	w.cancel(errStalled{waited: waited, bound: w.bound})
}

func (w *watchdog) stop() { w.timer.Stop() }

// once makes one request, failing it when the registry sends nothing for t.stall: neither
// the headers nor, later, any body bytes.
func (t *retryTransport) once(req *http.Request) (*http.Response, error) {
	if t.stall <= 0 {
		return t.inner.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	w := newWatchdog(t.stall, cancel)
	resp, err := t.inner.RoundTrip(req.WithContext(ctx))
	if err != nil {
		w.stop()
		var se errStalled
		stalled := errors.As(context.Cause(ctx), &se)
		cancel(nil)
		if stalled {
			return nil, se
		}
		return nil, err
	}
	w.alive()
	resp.Body = &stallBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel, w: w}
	return resp, nil
}

type stallBody struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	w      *watchdog
}

func (b *stallBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.alive()
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
	b.w.stop()
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}
