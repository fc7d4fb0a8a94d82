package dumbremote

import (
	"context"
	"errors"
	"io"
	"time"
)

// errNotFound is what a backend's get returns for a key it does not hold.
var errNotFound = errors.New("not on the remote")

// backend is where a remote's keys ("blobs/sha256/<hex>", "refs/…") live.
type backend interface {
	// exists reports whether key is there.
	exists(ctx context.Context, key string) (bool, error)
	// get opens key; an error wrapping errNotFound when it is not there.
	get(ctx context.Context, key string) (io.ReadCloser, error)
	// put writes key from r, size bytes (-1: unknown), so that readers see it whole or not at
	// all: when reading r fails, key is left as it was.
	put(ctx context.Context, key string, r io.Reader, size int64) error
	// list returns the keys below prefix (which ends with '/'), at any depth, relative to the
	// remote's root.
	list(ctx context.Context, prefix string) ([]string, error)
	// remove removes key; one that is not there is no error.
	remove(ctx context.Context, key string) error
	// sweep removes what writers that stopped (killed, crashed) left in temporaries older
	// than age, and returns how many.
	sweep(ctx context.Context, age time.Duration) (int, error)
}
