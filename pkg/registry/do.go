package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Do runs op, one registry operation (resolving an image, fetching a layer, pushing a thin
// image), with the remote options for it, and runs it again after a temporary fault its
// requests could not retry themselves: a body cut short, stalled or not matching its digest,
// an upload that cannot be replayed, an error marked Transient. Reruns wait with the same
// back-off and draw on the same budget as the requests' own retries.
//
// Do returns nil; op's error when it is not temporary; ctx's error (wrapping op's) when ctx
// ends; or, when the budget is spent, op's last error with what was spent, which is Final.
//
// Each call pings the registry and fetches a token again; a Client's Do does not.
func Do(ctx context.Context, opts []Option, op func([]remote.Option) error) error {
	return do(ctx, build(opts), nil, op)
}

// do is Do with o, reusing what c keeps unless c is nil.
func do(ctx context.Context, o *options, c *Client, op func([]remote.Option) error) error {
	b := o.budget()
	ro := o.remote(ctx, b)
	if c != nil {
		var err error
		if ro, err = c.remote(ctx, b); err != nil {
			return err
		}
	}
	for n := 1; ; n++ {
		err := op(ro)
		if err == nil {
			return nil
		}
		if c != nil && Denied(err) {
			c.forget()
		}
		if ctx.Err() != nil {
			if errors.Is(err, ctx.Err()) {
				return err
			}
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		if !o.retried(err) {
			return err
		}
		wait, ok := b.fault(n, "")
		if !ok {
			return b.gaveUp(err)
		}
		slog.Default().Warn("registry operation failed, trying it again", "reason", Reason(err), "err", err, "try", n, "wait", wait)
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w: %w", serr, err)
		}
	}
}
