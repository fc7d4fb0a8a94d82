package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

// LocksBucket is the JetStream KV bucket holding work leases.
const LocksBucket = "FLATBED_LOCKS"

// LeaseTTL is how long a lease outlives its holder: a holder that dies (SIGKILL, lost node)
// stops renewing, and the key expires after this long, so another worker takes over.
var LeaseTTL = 15 * time.Second

// Locks are leases in a JetStream KV bucket: one holder per key across every process that
// shares the NATS server, used so that two workers never do the same expensive work at once.
type Locks struct {
	kv  jetstream.KeyValue
	log *slog.Logger
}

var _ events.LeaseHolder = (*Locks)(nil)

// Locks opens (creating if needed) the lease bucket.
func (b *Bus) Locks(ctx context.Context) (*Locks, error) {
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LocksBucket,
		Description: "flatbed work leases (key = what is being built)",
		TTL:         LeaseTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    b.replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the %s bucket: %w", LocksBucket, err)
	}
	return &Locks{kv: kv, log: b.log}, nil
}

// Lock waits until this process holds the lease on key (or ctx ends), then keeps renewing it
// until release is called. A lease that cannot be renewed is logged; use Hold to also stop
// the work when it is lost.
func (l *Locks) Lock(ctx context.Context, key string) (release func(), err error) {
	_, release, err = l.Hold(ctx, key)
	return release, err
}

// Hold is Lock with a context for the work done under the lease: it ends (cause
// ErrLeaseLost) when the lease is lost — taken over after it expired, or not renewed for a
// whole LeaseTTL — since another process may own the key by then. The lease's revision
// fences it: a holder whose lease expired and was taken over cannot release the new
// holder's lease.
func (l *Locks) Hold(ctx context.Context, key string) (held context.Context, release func(), err error) {
	for {
		rev, err := l.kv.Create(ctx, key, leaseValue())
		if err == nil {
			held, cancel := context.WithCancelCause(ctx)
			return held, l.hold(key, rev, cancel), nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, nil, fmt.Errorf("taking lease %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ErrLeaseLost is the cause of a Hold context ended because the lease was lost.
var ErrLeaseLost = errors.New("lease lost")

func leaseValue() []byte { return []byte(time.Now().UTC().Format(time.RFC3339)) }

// hold renews the lease every LeaseTTL/3 (every second while renewals fail) until release.
func (l *Locks) hold(key string, rev uint64, lost context.CancelCauseFunc) func() {
	done := make(chan struct{})
	stopped := make(chan uint64)
	go func() {
		renewed := time.Now()
		every := LeaseTTL / 3
		t := time.NewTimer(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				stopped <- rev
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), LeaseTTL/3)
			r, err := l.kv.Update(ctx, key, leaseValue(), rev)
			cancel()
			switch {
			case err == nil:
				rev, renewed = r, time.Now()
				t.Reset(every)
			case revisionMoved(err):
				l.lose(key, lost, fmt.Errorf("%w: %s was taken over after it expired: %v", ErrLeaseLost, key, err))
				<-done
				stopped <- 0 // not ours any more: nothing to release
				return
			case time.Since(renewed) >= LeaseTTL:
				l.lose(key, lost, fmt.Errorf("%w: %s not renewed for %s: %v", ErrLeaseLost, key, time.Since(renewed).Round(time.Second), err))
				<-done
				stopped <- rev // release it anyway, in case it is still ours
				return
			default:
				l.log.Warn("renewing a lease failed; retrying", "lease", key, "err", err, "renewed", time.Since(renewed).Round(time.Millisecond).String()+" ago")
				t.Reset(time.Second)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { l.release(key, done, stopped, lost) }) }
}

// release stops renewing and deletes the lease, unless someone else holds it by now.
func (l *Locks) release(key string, done chan struct{}, stopped chan uint64, lost context.CancelCauseFunc) {
	close(done)
	last := <-stopped
	lost(nil)
	if last == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.kv.Delete(ctx, key, jetstream.LastRevision(last)); err != nil && !revisionMoved(err) {
		l.log.Warn("releasing a lease failed; it expires by itself", "lease", key, "in", LeaseTTL, "err", err)
	}
}

func (l *Locks) lose(key string, lost context.CancelCauseFunc, why error) {
	l.log.Error("lease lost; stopping the work done under it, which another process may now own", "lease", key, "err", why)
	lost(why)
}

// revisionMoved says the key is no longer at the revision this holder wrote: someone else
// took the lease (or it expired and was removed).
func revisionMoved(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return true
		}
	}
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}
