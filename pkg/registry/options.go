package registry

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// UserAgent is sent with every request.
const UserAgent = "flatbed"

// DefaultBackoff is the wait between tries of a request or operation that met a temporary
// fault: about 1, 2, 4, 8, 16, then every 30 s, with ±25% jitter, for as long as the registry
// timeout lasts (Steps 0: no limit on the count). A 20 s registry restart is over by the
// retry at about 15 or 31 s. A Retry-After answer waits longer when it asks to (up to
// MaxRetryAfter). RetryBaseEnv scales it.
var DefaultBackoff = remote.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.25, Cap: 30 * time.Second}

// DefaultTimeout is the registry timeout (--registry-timeout): how long one operation may go
// on retrying temporary faults, from the first, before it fails.
const DefaultTimeout = 10 * time.Minute

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
	timeout   time.Duration
	jobs      int
	final     func(error) bool // faults that are final for these operations though Temporary
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

// WithRetryBackoff replaces DefaultBackoff (tests use a fast one). Steps > 0 also bounds the
// faults one operation may meet before it fails, whatever is left of the registry timeout.
func WithRetryBackoff(b remote.Backoff) Option {
	return func(o *options) { o.backoff = b }
}

// WithFinal makes the faults final says are final for the operations of these options though
// Temporary: neither their requests nor Do try them again. A quick check (is the image
// there?) takes a refused connection (Refused) for an answer, where a conversion waits for a
// registry that restarts.
func WithFinal(final func(error) bool) Option {
	return func(o *options) { o.final = final }
}

// Refused is a connection the registry's host refused: nothing listens on its port.
func Refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// retried says whether err is tried again: it is Temporary and not final by WithFinal.
func (o *options) retried(err error) bool {
	return Temporary(err) && (o.final == nil || !o.final(err))
}

// WithTimeout sets the registry timeout (DefaultTimeout when d <= 0): how long one operation
// may go on retrying temporary faults, counted from its first fault. The operation then
// fails with its last fault, naming the bound; a request under way when it runs out may take
// up to the stall timeout longer.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
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
	if o.timeout <= 0 {
		o.timeout = DefaultTimeout
	}
	withSchemes(o) // the scheme an operation's context names for a registry is the only one tried
	return o
}

func (o *options) budget() *budget {
	return &budget{backoff: o.backoff, timeout: o.timeout, maxWait: MaxRetryAfter}
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
	all := authn.NewMultiKeychain(chain...)
	if ps := proxies(); len(ps) > 0 {
		return proxiedAnonymous{proxies: ps, inner: all}
	}
	return all
}

// Options returns the remote options for one operation under ctx. Its requests share one
// retry budget; Do also runs the operation again after faults they cannot retry.
func Options(ctx context.Context, opts ...Option) []remote.Option {
	o := build(opts)
	return o.remote(ctx, o.budget())
}

func (o *options) remote(ctx context.Context, b *budget) []remote.Option {
	return append(o.common(), remote.WithContext(withBudget(ctx, b)), remote.WithTransport(o.roundTripper(b)))
}

// common are the remote options of every operation but its context and transport.
func (o *options) common() []remote.Option {
	ro := []remote.Option{
		remote.WithAuthFromKeychain(o.chain()),
		remote.WithUserAgent(o.userAgent),
		// Retrying is retryTransport's and Do's alone (see the package doc): go-containerregistry
		// retries nothing, neither requests nor uploads, so faults never multiply.
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
	}
	if o.jobs > 0 {
		ro = append(ro, remote.WithJobs(o.jobs))
	}
	return ro
}

// roundTripper is the base transport with retryTransport on top, which charges a request to
// the budget its context carries, else to b (nil: a budget of the request's own).
func (o *options) roundTripper(b *budget) http.RoundTripper {
	if _, ok := o.transport.(*transport.Wrapper); ok {
		return o.transport // the caller opted out of all wrapping, retries included
	}
	base := o.transport
	if base == nil {
		base = remote.DefaultTransport
	}
	return &retryTransport{inner: base, budget: b, fresh: o.budget, codes: RetryStatusCodes, stall: stallTimeout(), retried: o.retried}
}
