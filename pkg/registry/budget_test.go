package registry

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// doGet resolves ref inside Do, as the services do, and says how long it took.
func doGet(ctx context.Context, t *testing.T, ref string, opts ...Option) (error, time.Duration) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = Do(ctx, append([]Option{WithKeychain(none)}, opts...), func(ro []remote.Option) error {
		_, err := remote.Get(r, ro...)
		return err
	})
	return err, time.Since(start)
}

var quick = remote.Backoff{Duration: 10 * time.Millisecond, Factor: 2, Cap: 50 * time.Millisecond}

// wantGaveUp checks that err is the end of a spent registry timeout, says so and still says
// what the last fault was.
func wantGaveUp(t *testing.T, err error, bound string, reason ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	t.Log(err)
	if !Final(err) || Temporary(err) {
		t.Errorf("Final %v, Temporary %v; want a spent budget to be final", Final(err), Temporary(err))
	}
	if want := "the registry timeout (--registry-timeout " + bound + ") ran out"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name the bound (%q)", err, want)
	}
	wantReason(t, err, reason...)
}

func TestRegistryTimeoutBoundsRefused(t *testing.T) {
	addr := closedPort(t)
	err, took := doGet(context.Background(), t, addr+"/demo/hello:1.0", WithRetryBackoff(quick), WithTimeout(300*time.Millisecond))
	wantGaveUp(t, err, "300ms", "nothing listens on "+addr)
	if took < 300*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("gave up after %s; the registry timeout is 300ms", took)
	}
}

func TestRegistryTimeoutBoundsStall(t *testing.T) {
	t.Setenv(StallTimeoutEnv, "100ms")
	addr := silent(t)
	err, took := doGet(context.Background(), t, addr+"/demo/hello:1.0", WithRetryBackoff(quick), WithTimeout(500*time.Millisecond))
	wantGaveUp(t, err, "500ms", "the registry stalled: it sent nothing for 1", "(the stall timeout is 100ms)")
	// The bound, plus at most one stall timeout for the request under way.
	if took < 500*time.Millisecond || took > 500*time.Millisecond+100*time.Millisecond+time.Second {
		t.Errorf("gave up after %s; the registry timeout is 500ms, the stall timeout 100ms", took)
	}
}

// busyRegistry answers every request 503 with retryAfter and counts them.
func busyRegistry(t *testing.T, retryAfter string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", retryAfter)
		http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"later"}]}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(s.Close)
	return s, &n
}

func TestRegistryTimeoutBoundsBusy(t *testing.T) {
	s, n := busyRegistry(t, "1")
	err, took := doGet(context.Background(), t, strings.TrimPrefix(s.URL, "http://")+"/demo/hello:1.0", WithRetryBackoff(quick), WithTimeout(1500*time.Millisecond))
	wantGaveUp(t, err, "1.5s", "registry answered 503 Service Unavailable")
	if !strings.Contains(err.Error(), "the registry last asked to wait 1 (Retry-After)") {
		t.Errorf("error %q does not say what Retry-After asked", err)
	}
	// Waits of 1 s (Retry-After), then 0.5 s (what is left): 3 tries, not a 10 ms back-off's 30.
	if got := n.Load(); got < 2 || got > 4 || took < 1500*time.Millisecond || took > 3*time.Second {
		t.Errorf("%d requests in %s; want about 3 in 1.5s", got, took)
	}
}

// A registry restarting: nothing listens on its port for a while, then it answers. The
// default back-off (scaled 1 s → 20 ms) outlasts it without the operation failing.
func TestRegistryRestartIsSurvived(t *testing.T) {
	t.Setenv(RetryBaseEnv, "20ms")
	addr := closedPort(t)
	srv := &http.Server{Handler: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	defer srv.Close()
	down := 600 * time.Millisecond // 20 s at the unscaled defaults would be 30× this
	go func() {
		time.Sleep(down)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		_ = srv.Serve(l)
	}()
	r, _ := name.ParseReference(addr + "/demo/hello:1.0")
	img, _ := random.Image(64, 1)
	start := time.Now()
	err := Do(context.Background(), []Option{WithKeychain(none)}, func(ro []remote.Option) error { return remote.Write(r, img, ro...) })
	if err != nil {
		t.Fatalf("after %s: %v", time.Since(start), err)
	}
	if took := time.Since(start); took < down {
		t.Errorf("pushed after %s, before the registry was up (%s)", took, down)
	}
}

// go-containerregistry retries nothing of its own: with a budget of 4 faults a registry
// that drops every connection sees 4 requests, not 4 × its 3 tries.
func TestOneRetryLayer(t *testing.T) {
	var n atomic.Int32
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	defer s.Close()
	tlsConfig := s.Client().Transport.(*http.Transport).TLSClientConfig
	err, _ := doGet(context.Background(), t, "example.com/demo/hello:1.0", WithTransport(dialingTo(s.Listener.Addr().String(), tlsConfig)),
		WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 4}))
	if got := n.Load(); got != 4 {
		t.Errorf("%d requests, want 4", got)
	}
	if !Final(err) || !strings.Contains(err.Error(), "gave up after 4 failed tries") || !strings.Contains(err.Error(), "the retry limit") {
		t.Errorf("err = %v, want the retry limit reached after 4 tries", err)
	}
}

// Do runs the operation again after a Transient error, and not after one that is not.
func TestDoRerunsTransient(t *testing.T) {
	var runs int
	err := Do(context.Background(), []Option{WithRetryBackoff(quick)}, func([]remote.Option) error {
		runs++
		if runs < 3 {
			return Transient(errors.New("the blob does not match its digest"))
		}
		return errors.New("malformed")
	})
	if runs != 3 || err == nil || err.Error() != "malformed" || Final(err) || Temporary(err) {
		t.Errorf("%d runs, err %v; want 3 runs ending with the non-temporary error as it is", runs, err)
	}
}

// A stopping process is handed back its context's end, never a final error.
func TestDoStopsWithContext(t *testing.T) {
	addr := closedPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	err, took := doGet(ctx, t, addr+"/demo/hello:1.0", WithRetryBackoff(remote.Backoff{Duration: time.Minute}))
	if !errors.Is(err, context.Canceled) || Final(err) || took > 5*time.Second {
		t.Errorf("err %v (Final %v) after %s; want context.Canceled, soon", err, Final(err), took)
	}
}

func TestBackoffSpansARestart(t *testing.T) {
	var total time.Duration
	b := DefaultBackoff
	b.Jitter = 0
	for n := 1; n <= 5; n++ {
		total += step(b, n)
	}
	// 1+2+4+8+16 s: the fifth retry comes 31 s after the first fault; with ±25% jitter, ≥ 23 s.
	if total != 31*time.Second {
		t.Errorf("five waits add up to %s, want 31s", total)
	}
	if got := step(b, 10); got != 30*time.Second {
		t.Errorf("tenth wait %s, want the 30s cap", got)
	}
}

// A plain-http registry that stalls: go-containerregistry's https try meets plain HTTP at
// once while the http try stalls. The stall decides: it is retried, and the bound ends it.
func TestPlainHTTPRegistryStalls(t *testing.T) {
	t.Setenv(StallTimeoutEnv, "100ms")
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer s.Close()
	defer close(release)
	err, took := doGet(context.Background(), t, strings.TrimPrefix(s.URL, "http://")+"/demo/hello:1.0", WithRetryBackoff(quick), WithTimeout(400*time.Millisecond))
	wantGaveUp(t, err, "400ms", "the registry stalled")
	if took > 2*time.Second {
		t.Errorf("took %s", took)
	}
}
