package ingester

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"flatbed.dev/pkg/store"
)

// Ingesting the layers of images leaves no lock file in the published store: origin.json is
// updated under a lock of its directory, and a lock file an earlier version left is removed.
func TestIngestLeavesNoLockFiles(t *testing.T) {
	f := newFixture(t, nil)
	s, _ := newService(t, t.TempDir())
	var st *store.Store
	var leftover string
	for _, ref := range []string{"demo/hello:1.0", "demo/hello:2.0"} { // they share a layer
		layers, err := f.imgs[ref].Image.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for i := range layers {
			job, in := f.request(t, ref, i)
			st = store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))
			if leftover == "" && st.HasLayer(in.Layer.Digest) {
				leftover = filepath.Join(st.LayerMeta(in.Layer.Digest), "origin.json.lock")
				if err := os.WriteFile(leftover, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := handle(t, s, in, 1); err != nil {
				t.Fatalf("%s layer %d: %v", ref, i, err)
			}
		}
	}
	if leftover == "" {
		t.Fatal("no layer shared by the two images: fix the test")
	}
	var locks []string
	_ = filepath.WalkDir(st.Root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(d.Name(), ".lock") {
			locks = append(locks, p)
		}
		return nil
	})
	if len(locks) > 0 {
		t.Errorf("lock files in the store: %v", locks)
	}
}

// Concurrent addOrigin calls for one layer, as ingesters of different images make them,
// lose no origin.
func TestAddOriginConcurrent(t *testing.T) {
	st := store.New(t.TempDir())
	layer := "sha256:" + strings.Repeat("a", 64)
	var want []string
	var wg sync.WaitGroup
	for i := range 12 {
		c := "sha256:" + strings.Repeat(string(rune('a'+i)), 64)
		want = append(want, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := addOrigin(st, layer, c); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	slices.Sort(want)
	if got := readOrigin(t, st, layer); !slices.Equal(got, want) {
		t.Errorf("origin = %v, want %v", got, want)
	}
	entries, _ := os.ReadDir(st.LayerMeta(layer))
	if len(entries) != 1 {
		t.Errorf(".metadata holds %d entries, want only origin.json", len(entries))
	}
}
