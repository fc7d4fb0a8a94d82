package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// tokenAuth is a registry that wants bearer tokens, as Docker Hub does: GET /v2/ without a
// token answers 401 with the challenge, /token hands out a token per scope. It counts both.
type tokenAuth struct{ pings, tokens atomic.Int32 }

func (a *tokenAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			a.tokens.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]string{"token": "t " + r.URL.Query().Get("scope")})
			return
		}
		if r.URL.Path == "/v2/" {
			a.pings.Add(1)
		}
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer t ") {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, r.Host))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}`, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Through a Client, operations in several repositories of one registry, some at once, ping
// it once and fetch one token per repository; each package-level Do pings and fetches anew.
func TestClientPingsOncePerRegistry(t *testing.T) {
	var a tokenAuth
	host := serve(t, a.wrap)
	repos := []string{"a/img:1", "b/img:1", "c/img:1"}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range repos {
		if err := remote.Write(ref(t, host, r), img, Options(context.Background(), WithKeychain(none), WithRetryBackoff(fast))...); err != nil {
			t.Fatal(err)
		}
	}
	// Each operation reads a manifest (HEAD, then GET) and the config, as the resolver does.
	read := func(repo string) func([]remote.Option) error {
		return func(ro []remote.Option) error {
			if _, err := remote.Head(ref(t, host, repo), ro...); err != nil {
				return err
			}
			desc, err := remote.Get(ref(t, host, repo), ro...)
			if err != nil {
				return err
			}
			i, err := desc.Image()
			if err != nil {
				return err
			}
			_, err = i.RawConfigFile()
			return err
		}
	}
	const rounds = 4
	run := func(do func(context.Context, func([]remote.Option) error) error) {
		t.Helper()
		a.pings.Store(0)
		a.tokens.Store(0)
		var wg sync.WaitGroup
		errs := make(chan error, rounds*len(repos))
		for range rounds {
			for _, r := range repos {
				wg.Go(func() { errs <- do(context.Background(), read(r)) })
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}

	opts := []Option{WithKeychain(none), WithRetryBackoff(fast)}
	run(func(ctx context.Context, op func([]remote.Option) error) error { return Do(ctx, opts, op) })
	if got, ops := a.pings.Load(), int32(rounds*len(repos)); got < ops {
		t.Fatalf("package Do: %d pings for %d operations; the test would show nothing", got, ops)
	}

	c := NewClient(opts...)
	run(c.Do)
	if got := a.pings.Load(); got != 1 {
		t.Errorf("Client: %d pings of GET /v2/ for %d operations, want 1", got, rounds*len(repos))
	}
	if got, want := a.tokens.Load(), int32(len(repos)); got != want {
		t.Errorf("Client: %d tokens fetched, want %d (one per repository)", got, want)
	}
	run(c.Do) // a second run asks for nothing again
	if p, tk := a.pings.Load(), a.tokens.Load(); p != 0 || tk != 0 {
		t.Errorf("Client, again: %d pings and %d tokens, want none", p, tk)
	}
}

// Operations through one Client each have their own retry budget, and all the requests of
// one operation draw on it.
func TestClientBudgetPerOperation(t *testing.T) {
	var busy, gets atomic.Int32
	host := serve(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet {
				gets.Add(1)
				if busy.Add(-1) >= 0 {
					http.Error(w, "busy", http.StatusServiceUnavailable)
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	img, _ := random.Image(64, 1)
	r := ref(t, host, "budget/test:1")
	if err := remote.Write(r, img, Options(context.Background(), WithKeychain(none), WithRetryBackoff(fast))...); err != nil {
		t.Fatal(err)
	}
	c := NewClient(WithKeychain(none), WithRetryBackoff(fast)) // the 4th fault spends a budget
	get := func(ro []remote.Option) error {
		_, err := remote.Get(r, ro...)
		return err
	}
	for i := range 3 {
		busy.Store(2)
		if err := c.Do(context.Background(), get); err != nil {
			t.Fatalf("operation %d after 2 busy answers: %v; each operation must have its own budget", i, err)
		}
	}
	busy.Store(1 << 20)
	gets.Store(0)
	if err := c.Do(context.Background(), get); !Final(err) {
		t.Fatalf("busy for ever: %v, want a Final error once the budget is spent", err)
	}
	if got, want := gets.Load(), int32(fast.Steps); got != want {
		t.Errorf("busy for ever: %d manifest GETs, want %d: the operation's requests share its budget", got, want)
	}
}

// snapshot is a keychain that hands out the password it holds when asked, as the docker
// config does: what it handed out does not change afterwards.
type snapshot struct{ user, pass *atomic.Value }

func (s snapshot) Resolve(authn.Resource) (authn.Authenticator, error) {
	return basic{user: s.user.Load().(string), password: s.pass.Load().(string)}, nil
}

// A refused credential is not kept: after a docker login the next operation uses the new one.
func TestClientForgetsRefusedCredentials(t *testing.T) {
	const user, pass = "u", "right-Pa55"
	var pings atomic.Int32
	host := serve(t, func(next http.Handler) http.Handler {
		auth := basicOnly(user, pass)(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" && r.Header.Get("Authorization") == "" {
				pings.Add(1)
			}
			auth.ServeHTTP(w, r)
		})
	})
	img, _ := random.Image(64, 1)
	r := ref(t, host, "login/test:1")
	if err := remote.Write(r, img, Options(context.Background(), WithKeychain(none), WithRetryBackoff(fast), WithBasicAuth(host, user, pass))...); err != nil {
		t.Fatal(err)
	}
	var u, p atomic.Value
	u.Store(user)
	p.Store("wrong")
	c := NewClient(WithKeychain(snapshot{&u, &p}), WithRetryBackoff(fast))
	get := func(ro []remote.Option) error {
		_, err := remote.Get(r, ro...)
		return err
	}
	pings.Store(0)
	err := c.Do(context.Background(), get)
	if !Denied(err) {
		t.Fatalf("wrong password: %v, want a refusal", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
	p.Store(pass)
	if err := c.Do(context.Background(), get); err != nil {
		t.Fatalf("after the login: %v", err)
	}
	if err := c.Do(context.Background(), get); err != nil {
		t.Fatal(err)
	}
	if got := pings.Load(); got != 2 {
		t.Errorf("%d pings, want 2: one before the refusal, one after it", got)
	}
}
