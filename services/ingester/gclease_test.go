package ingester

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"flatbed.dev/pkg/store"
)

// mutexLocks is an events.Locker of in-process mutexes, one a key.
type mutexLocks struct {
	mu   sync.Mutex
	held map[string]*sync.Mutex
}

func (l *mutexLocks) Lock(_ context.Context, key string) (func(), error) {
	l.mu.Lock()
	if l.held == nil {
		l.held = map[string]*sync.Mutex{}
	}
	m, ok := l.held[key]
	if !ok {
		m = &sync.Mutex{}
		l.held[key] = m
	}
	l.mu.Unlock()
	m.Lock()
	return m.Unlock, nil
}

// A layer garbage collection removes under its lease while a conversion's request for it
// arrives is not reported present: the ingester looks under the lease and unpacks it again.
func TestPresentLayerRemovedUnderTheLeaseIsIngestedAgain(t *testing.T) {
	f := newFixture(t, nil)
	s, b := newService(t, t.TempDir())
	var locks mutexLocks
	s.Locks = &locks
	job, in := f.request(t, "demo/hello:1.0", 0)
	st := store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))
	if err := handle(t, s, in, 1); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	f.count.blobs.Store(0)

	release, _ := locks.Lock(context.Background(), "layer."+store.Hex(in.Layer.Digest)) // gc holds it
	done := make(chan error, 1)
	go func() { done <- handle(t, s, in, 1) }()
	time.Sleep(100 * time.Millisecond)
	if err := os.RemoveAll(st.LayerDir(in.Layer.Digest)); err != nil { // gc removes the layer
		t.Fatal(err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := onlyIngested(t, b)
	if out.AlreadyPresent || !st.HasLayer(in.Layer.Digest) || f.count.blobs.Load() != 1 {
		t.Errorf("AlreadyPresent %v, layer there %v, %d blob GETs: want the layer unpacked again", out.AlreadyPresent, st.HasLayer(in.Layer.Digest), f.count.blobs.Load())
	}
}
