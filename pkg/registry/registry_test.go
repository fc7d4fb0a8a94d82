package registry

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

var fast = remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 4}

// none is an empty keychain, so tests never read the real docker config.
var none = authn.NewMultiKeychain()

// serve starts an in-memory registry behind wrap and returns its host.
func serve(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	s := httptest.NewServer(wrap(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func basicOnly(user, pass string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func ref(t *testing.T, host, repo string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBasicAuth(t *testing.T) {
	const user, pass = "cvmfsunpacker", "s3cret-Pa55word"
	host := serve(t, basicOnly(user, pass))
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name     string
		opts     []Option
		wantFail bool
	}{
		{"right password", []Option{WithBasicAuth(host, user, pass)}, false},
		{"every registry", []Option{WithBasicAuth("", user, pass)}, false},
		{"other registry", []Option{WithBasicAuth("elsewhere.example.org", user, pass)}, true},
		{"wrong password", []Option{WithBasicAuth(host, user, pass+"-wrong")}, true},
		{"anonymous", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]Option{WithKeychain(none), WithRetryBackoff(fast)}, tt.opts...)
			err := remote.Write(ref(t, host, "auth/test:1"), img, Options(ctx, opts...)...)
			if (err != nil) != tt.wantFail {
				t.Fatalf("Write error = %v, want failure %v", err, tt.wantFail)
			}
			if err != nil && strings.Contains(err.Error(), pass) {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestDUCCAuth(t *testing.T) {
	const user, pass = "u", "from-env-Pa55"
	host := serve(t, basicOnly(user, pass))
	img, _ := random.Image(64, 1)
	t.Setenv("DUCC_OUTPUT_REGISTRY_PASS", pass)
	opts := Options(context.Background(), WithKeychain(none), WithRetryBackoff(fast), WithDUCCAuth(host, user))
	if err := remote.Write(ref(t, host, "ducc/test:1"), img, opts...); err != nil {
		t.Fatal(err)
	}
}

func TestPasswordFromEnv(t *testing.T) {
	tests := []struct {
		env    map[string]string
		want   string
		wantOK bool
	}{
		{map[string]string{}, "", false},
		{map[string]string{"DOCKER2CVMFS_DOCKER_REGISTRY_PASS": "c"}, "c", true},
		{map[string]string{"DOCKER2CVMFS_DOCKER_REGISTRY_PASS": "c", "DUCC_DOCKER_REGISTRY_PASS": "b"}, "b", true},
		{map[string]string{"DOCKER2CVMFS_DOCKER_REGISTRY_PASS": "c", "DUCC_DOCKER_REGISTRY_PASS": "b", "DUCC_OUTPUT_REGISTRY_PASS": "a"}, "a", true},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			for _, name := range PasswordEnv {
				t.Setenv(name, tt.env[name])
			}
			got, ok := PasswordFromEnv()
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("PasswordFromEnv() = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestSecretNotPrinted(t *testing.T) {
	const pass = "do-not-print-me"
	r, _ := name.NewRegistry("r.example.org")
	auth, err := Keychain(WithKeychain(none), WithBasicAuth("", "u", pass)).Resolve(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(auth), fmt.Sprintf("%v %+v %#v %s", auth, auth, auth, auth)} {
		if strings.Contains(s, pass) {
			t.Errorf("printing the authenticator shows the password: %s", s)
		}
	}
}

func TestRetry(t *testing.T) {
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			var failures atomic.Int32
			host := serve(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet && failures.Add(1) <= 2 {
						w.Header().Set("Retry-After", "0")
						http.Error(w, "busy", code)
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			img, _ := random.Image(64, 1)
			opts := Options(context.Background(), WithKeychain(none), WithRetryBackoff(fast))
			r := ref(t, host, "retry/test:1")
			if err := remote.Write(r, img, opts...); err != nil {
				t.Fatal(err)
			}
			if _, err := remote.Image(r, opts...); err != nil {
				t.Fatalf("Image after two %d answers: %v", code, err)
			}
			if got := failures.Load(); got < 3 {
				t.Errorf("manifest GETs = %d, want at least 3", got)
			}
		})
	}
}

func TestUserAgentAndTransport(t *testing.T) {
	var agents atomic.Value
	host := serve(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			agents.Store(r.UserAgent())
			next.ServeHTTP(w, r)
		})
	})
	var used atomic.Bool
	rt := roundTripper(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	})
	img, _ := random.Image(64, 1)
	opts := Options(context.Background(), WithKeychain(none), WithTransport(rt), WithJobs(2), WithRetryBackoff(fast))
	if err := remote.Write(ref(t, host, "ua/test:1"), img, opts...); err != nil {
		t.Fatal(err)
	}
	if ua, _ := agents.Load().(string); !strings.HasPrefix(ua, UserAgent) {
		t.Errorf("User-Agent = %q, want it to start with %q", ua, UserAgent)
	}
	if !used.Load() {
		t.Error("WithTransport: transport not used")
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
