package client

import (
	"context"
	"fmt"
)

// Wait returns the result of the wish wishID, whether it is stored already (and not yet
// swept) or comes later. The error is the Result's Err when the conversion failed, or why
// no result came (ctx ended).
func (c *Client) Wait(ctx context.Context, wishID string) (Result, error) {
	return c.wait(ctx, Filter{WishID: wishID, FromSequence: 1})
}

// Convert publishes w and waits for its result; the error is the Result's Err when the
// conversion failed, or says why no result came.
func (c *Client) Convert(ctx context.Context, w Wish) (Result, error) {
	id, seq, err := c.publish(ctx, w)
	if err != nil {
		return Result{}, err
	}
	// The result is stored after the wish: reading from the wish's sequence misses nothing.
	return c.wait(ctx, Filter{WishID: id, FromSequence: seq})
}

func (c *Client) wait(ctx context.Context, f Filter) (Result, error) {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results, err := c.Follow(fctx, f)
	if err != nil {
		return Result{}, err
	}
	r, ok := <-results
	if !ok {
		return Result{}, fmt.Errorf("waiting for the result of wish %s: %w", f.WishID, ctx.Err())
	}
	return r, r.Err()
}
