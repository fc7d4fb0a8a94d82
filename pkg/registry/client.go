package registry

import (
	"context"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Client keeps, for the life of a process, what each registry operation would otherwise learn
// anew before its first real request. Alone, go-containerregistry pings the registry (GET
// /v2/) and exchanges the credentials for a token in every operation; through a Client each
// registry is pinged once, and each repository's credentials are resolved and exchanged for
// a pull token once (a remote.Puller keeps one authenticated transport per repository and
// renews its token when the registry asks), however many operations follow. Every operation
// still has a retry budget of its own.
//
// A Client serves the options it was made with and is safe for concurrent use. When a
// registry refuses the credentials (401, 403) it forgets what it kept, so the next operation
// resolves them anew: a docker login while a service runs takes effect. It keeps
// credentials only inside go-containerregistry's transports and never logs them.
type Client struct {
	o *options

	mu     sync.Mutex
	puller *remote.Puller // nil until the first operation, or after a refusal
}

// NewClient returns a Client with opts (see Options).
func NewClient(opts ...Option) *Client {
	return &Client{o: build(opts)}
}

// Do is the package's Do with the client's options: op's remote options reuse what the
// client keeps for reading (remote.Reuse); writing is as without a client.
func (c *Client) Do(ctx context.Context, op func([]remote.Option) error) error {
	return do(ctx, c.o, c, op)
}

func (c *Client) remote(ctx context.Context, b *budget) ([]remote.Option, error) {
	p, err := c.pull()
	if err != nil {
		return nil, err
	}
	return append(c.o.remote(ctx, b), remote.Reuse(p)), nil
}

// pull returns the client's puller, made on first use. Its transport charges each request to
// the operation in whose context it is made (withBudget).
func (c *Client) pull() (*remote.Puller, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.puller != nil {
		return c.puller, nil
	}
	t := c.o.roundTripper(nil)
	if _, ok := t.(*transport.Wrapper); !ok {
		t = &pingCache{inner: t}
	}
	p, err := remote.NewPuller(append(c.o.common(), remote.WithTransport(t))...)
	if err != nil {
		return nil, err
	}
	c.puller = p
	return p, nil
}

// forget drops the puller, its pings and its tokens.
func (c *Client) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.puller = nil
}
