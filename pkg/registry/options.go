package registry

import (
	"context"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// UserAgent is sent with every request.
const UserAgent = "flatbed"

// DefaultBackoff retries like DUCC does on 429: about 1, 2, 4, 8, 16 s with
// ±25% jitter, at most 60 s, five retries. A Retry-After answer waits longer
// when it asks to (up to MaxRetryAfter). RetryBaseEnv scales it.
var DefaultBackoff = remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.25, Steps: 6, Cap: time.Minute}

// RetryStatusCodes are the answers retried with back-off (honouring Retry-After).
var RetryStatusCodes = []int{
	http.StatusRequestTimeout,
	http.StatusTooManyRequests,
	http.StatusInternalServerError,
	http.StatusBadGateway,
	http.StatusServiceUnavailable,
	http.StatusGatewayTimeout,
}

// Option configures Options and Keychain.
type Option func(*options)

type options struct {
	static    []authn.Keychain
	keychain  authn.Keychain
	transport http.RoundTripper
	userAgent string
	backoff   remote.Backoff
	jobs      int
}

// WithBasicAuth uses user and password for registry (a host[:port] as in
// name.Registry.RegistryStr; "" for every registry). It wins over the
// environment and the docker config.
func WithBasicAuth(registry, user, password string) Option {
	return func(o *options) {
		o.static = append(o.static, scoped{registry: registry, auth: basic{user, password}})
	}
}

// WithDUCCAuth is DUCC's thin-image push credential: the wishlist's user
// with the password from PasswordFromEnv, for registry. It does nothing
// when user is empty or no password is set.
func WithDUCCAuth(registry, user string) Option {
	pass, ok := PasswordFromEnv()
	if user == "" || !ok {
		return func(*options) {}
	}
	return WithBasicAuth(registry, user, pass)
}

// WithKeychain replaces the fall-back keychain (authn.DefaultKeychain:
// docker and podman config files).
func WithKeychain(k authn.Keychain) Option {
	return func(o *options) { o.keychain = k }
}

// WithTransport sets the base HTTP transport (e.g. custom TLS); retries
// and the user agent are still added on top unless t is a
// *transport.Wrapper.
func WithTransport(t http.RoundTripper) Option {
	return func(o *options) { o.transport = t }
}

// WithUserAgent replaces UserAgent.
func WithUserAgent(ua string) Option {
	return func(o *options) { o.userAgent = ua }
}

// WithRetryBackoff replaces DefaultBackoff (tests use a fast one).
func WithRetryBackoff(b remote.Backoff) Option {
	return func(o *options) { o.backoff = b }
}

// WithJobs sets how many blobs are transferred at once.
func WithJobs(n int) Option {
	return func(o *options) { o.jobs = n }
}

func build(opts []Option) *options {
	o := &options{keychain: authn.DefaultKeychain, userAgent: UserAgent, backoff: defaultBackoff()}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Keychain returns the credentials in order: WithBasicAuth/WithDUCCAuth,
// DUCC_AUTH_REGISTRIES, then the fall-back keychain, which also finds
// Docker Hub credentials for registry.hub.docker.com.
func Keychain(opts ...Option) authn.Keychain {
	return build(opts).chain()
}

func (o *options) chain() authn.Keychain {
	entries, _ := envEntries()
	chain := append([]authn.Keychain{}, o.static...)
	chain = append(chain, envKeychain(entries), hubAlias{o.keychain})
	return authn.NewMultiKeychain(chain...)
}

// Options returns the remote options for one operation under ctx.
func Options(ctx context.Context, opts ...Option) []remote.Option {
	o := build(opts)
	ro := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.chain()),
		remote.WithUserAgent(o.userAgent),
		remote.WithRetryBackoff(o.backoff),
	}
	if _, ok := o.transport.(*transport.Wrapper); ok {
		// The caller opted out of go-containerregistry's wrapping: keep its status retries.
		ro = append(ro, remote.WithTransport(o.transport), remote.WithRetryStatusCodes(RetryStatusCodes...))
	} else {
		base := o.transport
		if base == nil {
			base = remote.DefaultTransport
		}
		// Busy answers are retried by retryTransport, which honours Retry-After and stops
		// waiting when ctx ends; go-containerregistry still retries network errors around it.
		ro = append(ro,
			remote.WithTransport(&retryTransport{inner: base, backoff: o.backoff, codes: RetryStatusCodes, maxWait: MaxRetryAfter, stall: stallTimeout()}),
			remote.WithRetryStatusCodes())
	}
	if o.jobs > 0 {
		ro = append(ro, remote.WithJobs(o.jobs))
	}
	return ro
}
