package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LocksBucket is the JetStream KV bucket holding work leases.
const LocksBucket = "FLATBED_LOCKS"

// LeaseTTL is how long a lease outlives its holder: a holder that dies (SIGKILL, lost node)
// stops renewing, and the key expires after this long, so another worker takes over.
var LeaseTTL = 15 * time.Second

// Locks are leases in a JetStream KV bucket: one holder per key across every process that
// shares the NATS server, used so that two workers never do the same expensive work at once.
type Locks struct {
	kv jetstream.KeyValue
}

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
	return &Locks{kv: kv}, nil
}

// Lock waits until this process holds the lease on key (or ctx ends), then keeps renewing it
// until release is called. The lease's revision fences it: a holder whose lease expired and
// was taken over cannot release the new holder's lease.
func (l *Locks) Lock(ctx context.Context, key string) (release func(), err error) {
	for {
		rev, err := l.kv.Create(ctx, key, []byte(time.Now().UTC().Format(time.RFC3339)))
		if err == nil {
			return l.hold(key, rev), nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("taking lease %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (l *Locks) hold(key string, rev uint64) func() {
	done := make(chan struct{})
	stopped := make(chan uint64)
	go func() {
		t := time.NewTicker(LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				stopped <- rev
				return
			case <-t.C:
				ctx, cancel := context.WithTimeout(context.Background(), LeaseTTL/3)
				if r, err := l.kv.Update(ctx, key, []byte(time.Now().UTC().Format(time.RFC3339)), rev); err == nil {
					rev = r
				}
				cancel()
			}
		}
	}()
	return func() {
		close(done)
		last := <-stopped
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.kv.Delete(ctx, key, jetstream.LastRevision(last))
	}
}
