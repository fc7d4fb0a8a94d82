package bus_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flatbed.dev/events/bus"
)

func TestLocksExcludeAcrossBuses(t *testing.T) {
	ns, b1 := startBus(t)
	_ = ns
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l1, err := b1.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := b1.Locks(ctx) // a second handle on the same bucket, as another process has
	if err != nil {
		t.Fatal(err)
	}
	var holders, maxHolders atomic.Int32
	var wg sync.WaitGroup
	for i, l := range []interface {
		Lock(context.Context, string) (func(), error)
	}{l1, l2, l1, l2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := l.Lock(ctx, "flat.abc")
			if err != nil {
				t.Errorf("worker %d: %v", i, err)
				return
			}
			n := holders.Add(1)
			for {
				m := maxHolders.Load()
				if n <= m || maxHolders.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
			holders.Add(-1)
			release()
		}()
	}
	wg.Wait()
	if maxHolders.Load() != 1 {
		t.Errorf("%d workers held the lease at once, want 1", maxHolders.Load())
	}
}

// A lease taken over by someone else ends its holder's context, so the holder stops working
// on what another process may now own.
func TestLostLeaseEndsTheHoldersWork(t *testing.T) {
	old := bus.LeaseTTL
	bus.LeaseTTL = 900 * time.Millisecond // renewed every 300ms
	defer func() { bus.LeaseTTL = old }()
	_, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := b.Locks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held, release, err := l.Hold(ctx, "layer.abc")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	time.Sleep(time.Second) // renewed a few times: still held
	if err := held.Err(); err != nil {
		t.Fatalf("lease lost while renewed: %v", context.Cause(held))
	}
	// Another process finds the key expired and takes it.
	kv, err := b.JetStream().KeyValue(ctx, bus.LocksBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "layer.abc", []byte("someone else")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Done():
		if !errors.Is(context.Cause(held), bus.ErrLeaseLost) {
			t.Errorf("cause = %v, want ErrLeaseLost", context.Cause(held))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the holder's context still runs after its lease was taken over")
	}
	release()
	// The new holder's lease is untouched by the old holder's release.
	if e, err := kv.Get(ctx, "layer.abc"); err != nil || string(e.Value()) != "someone else" {
		t.Errorf("after the old holder's release: %v, %v", e, err)
	}
}
