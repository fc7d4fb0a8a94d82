package bus_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
