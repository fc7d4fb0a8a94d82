package lifecycle_test

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"flatbed.dev/pkg/lifecycle"
)

// What conversions in flight need (a layer and a config no recorded image names yet) is kept
// without any minimum age, and said so; what they do not need goes.
func TestCollectKeepsWhatConversionsInFlightNeed(t *testing.T) {
	f := newFixture(t)
	needed, unneeded := f.layer("needed"), f.layer("unneeded")
	cfg := digest("config in flight")
	if err := os.MkdirAll(f.st.FlatDir(cfg), 0o755); err != nil {
		t.Fatal(err)
	}
	inFlight := func(context.Context) ([]string, []string, error) { return []string{needed}, []string{cfg}, nil }
	c, err := lifecycle.Collect(context.Background(), f.st, lifecycle.CollectOptions{MinAge: -1, InFlight: inFlight, Locks: &locks{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Removed) != 1 || c.Removed[0] != rel(f.st, f.st.LayerDir(unneeded)) {
		t.Errorf("removed %v, want only %s", c.Removed, rel(f.st, f.st.LayerDir(unneeded)))
	}
	for _, p := range []string{f.st.LayerDir(needed), f.st.FlatDir(cfg)} {
		if why := c.Kept[rel(f.st, p)]; why != "unused, but a conversion in flight needs it" {
			t.Errorf("%s kept because %q", rel(f.st, p), why)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s is gone", p)
		}
	}
}

// A conversion that starts while garbage collection waits for a layer's lease (its event is
// on the bus before it looks at the store) keeps that layer: the in-flight list is read
// again under the lease.
func TestCollectLooksAtConversionsInFlightUnderTheLease(t *testing.T) {
	f := newFixture(t)
	l := f.layer("wanted soon")
	var started atomic.Bool
	inFlight := func(context.Context) ([]string, []string, error) {
		if started.Load() {
			return []string{l}, nil, nil
		}
		return nil, nil, nil
	}
	var lk locks
	release, _ := lk.Lock(context.Background(), "layer."+l[len("sha256:"):])
	done := make(chan *lifecycle.Collection)
	go func() {
		c, err := lifecycle.Collect(context.Background(), f.st, lifecycle.CollectOptions{MinAge: -1, InFlight: inFlight, Locks: &lk})
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	time.Sleep(100 * time.Millisecond)
	started.Store(true)
	release()
	c := <-done
	if len(c.Removed) != 0 || !f.st.HasLayer(l) {
		t.Errorf("removed %v: the layer a conversion started to need under the lease must stay", c.Removed)
	}
}

// When the in-flight list cannot be read, nothing is removed.
func TestCollectRemovesNothingWithoutTheInFlightList(t *testing.T) {
	f := newFixture(t)
	l := f.layer("unused")
	broken := func(context.Context) ([]string, []string, error) { return nil, nil, errors.New("nats: no responders") }
	c, err := lifecycle.Collect(context.Background(), f.st, lifecycle.CollectOptions{MinAge: -1, InFlight: broken})
	if err == nil || !f.st.HasLayer(l) {
		t.Errorf("Collect = %v, %v; want an error and the layer kept", c, err)
	}
}
