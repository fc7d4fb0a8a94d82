package lifecycle_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/store"
)

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// fixture writes what a conversion leaves: layers, a flat tree, the recorded manifest and
// the public path.
type fixture struct {
	t  *testing.T
	st *store.Store
}

func (f fixture) layer(name string) string {
	d := digest("layer " + name)
	if err := os.MkdirAll(filepath.Join(f.st.LayerFS(d), "etc"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.st.LayerFS(d), "etc", name), []byte(name), 0o644); err != nil {
		f.t.Fatal(err)
	}
	tally, err := layer.Count(f.st.LayerFS(d))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := layer.WriteMeta(f.st.LayerMeta(d), &layer.Meta{Digest: d, Whiteouts: layer.WhiteoutOCI, Tally: &tally}); err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f fixture) image(name, config string, layers ...string) {
	cfg := digest("config " + config)
	if err := os.MkdirAll(filepath.Join(f.st.FlatDir(cfg), "etc"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.st.FlatDir(cfg), "etc", "os-release"), []byte(config), 0o644); err != nil {
		f.t.Fatal(err)
	}
	tally, err := layer.Count(f.st.FlatDir(cfg))
	if err != nil {
		f.t.Fatal(err)
	}
	rec, _ := json.Marshal(lifecycle.Record{Image: "http://" + name, Flat: &tally})
	if _, err := store.WriteFileAtomic(filepath.Join(f.st.MetadataDir(name), lifecycle.RecordFile), rec, 0o644); err != nil {
		f.t.Fatal(err)
	}
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
	}
	m := struct {
		Config desc   `json:"config"`
		Layers []desc `json:"layers"`
	}{Config: desc{"application/vnd.oci.image.config.v1+json", cfg}}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{"application/vnd.oci.image.layer.v1.tar+gzip", l})
	}
	b, _ := json.Marshal(m)
	if _, err := store.WriteFileAtomic(f.st.ManifestPath(name), b, 0o644); err != nil {
		f.t.Fatal(err)
	}
	rel, _ := filepath.Rel(filepath.Dir(f.st.PublicPath(name)), f.st.FlatDir(cfg))
	if _, err := store.SymlinkAtomic(rel, f.st.PublicPath(name)); err != nil {
		f.t.Fatal(err)
	}
}

func newFixture(t *testing.T) fixture { return fixture{t, store.New(t.TempDir())} }

// tree records every path of the store with its type and size.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		rel, _ := filepath.Rel(root, p)
		out[rel] = fmt.Sprint(fi.Mode().Type(), fi.Size())
		return nil
	})
	return out
}

func later(d time.Duration) func() time.Time { return func() time.Time { return time.Now().Add(d) } }

// Two images share a base layer; one is deleted. Garbage collection then removes exactly its
// unshared parts, once the grace period has passed, and not before; a dry run changes nothing.
func TestDeleteThenCollect(t *testing.T) {
	f := newFixture(t)
	base, l1, l2 := f.layer("base"), f.layer("one"), f.layer("two")
	f.image("r.example/apps/one:1", "one", base, l1)
	f.image("r.example/apps/two:1", "two", base, l2)
	ctx := context.Background()

	removed, err := lifecycle.Delete(f.st, "r.example/apps/one:1", false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, "r.example/apps/one:1") || !slices.Contains(removed, ".metadata/r.example/apps/one:1") {
		t.Errorf("Delete removed %v", removed)
	}
	if _, err := os.Lstat(f.st.PublicPath("r.example/apps/one:1")); err == nil {
		t.Error("the public path is still there")
	}
	if _, err := lifecycle.Delete(f.st, "r.example/apps/one:1", false); err == nil {
		t.Error("deleting an image the store does not hold succeeded")
	}

	// Within the grace period nothing goes.
	before := tree(t, f.st.Root)
	c, err := lifecycle.Collect(ctx, f.st, lifecycle.CollectOptions{Grace: 48 * time.Hour, Now: later(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Removed) != 0 || len(c.Kept) != 2 {
		t.Errorf("within the grace period: removed %v, kept %v", c.Removed, c.Kept)
	}
	// A dry run after it says what would go, and changes nothing.
	c, err = lifecycle.Collect(ctx, f.st, lifecycle.CollectOptions{Grace: 48 * time.Hour, DryRun: true, Now: later(72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{rel(f.st, f.st.FlatDir(digest("config one"))), rel(f.st, f.st.LayerDir(l1))}
	slices.Sort(want)
	slices.Sort(c.Removed)
	if !slices.Equal(c.Removed, want) {
		t.Errorf("dry run would remove %v, want %v", c.Removed, want)
	}
	if d := diff(before, tree(t, f.st.Root)); d != "" {
		t.Errorf("the dry run changed the store:\n%s", d)
	}
	// After it, exactly the unshared parts go.
	c, err = lifecycle.Collect(ctx, f.st, lifecycle.CollectOptions{Grace: 48 * time.Hour, Now: later(72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Removed, want) {
		t.Errorf("removed %v, want %v", c.Removed, want)
	}
	for _, keep := range []string{f.st.LayerFS(base), f.st.LayerFS(l2), f.st.FlatDir(digest("config two")), f.st.PublicPath("r.example/apps/two:1")} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s is gone: %v", keep, err)
		}
	}
	for _, gone := range []string{f.st.LayerDir(l1), f.st.FlatDir(digest("config one"))} {
		if _, err := os.Lstat(gone); err == nil {
			t.Errorf("%s is still there", gone)
		}
	}
	for p := range tree(t, f.st.Root) {
		if strings.Contains(p, ".tmp-") {
			t.Errorf("temporary left: %s", p)
		}
	}
}

// What a conversion in flight has made (layers no recorded image names yet) is never
// collected: it is younger than the minimum age, whatever the grace period.
func TestCollectKeepsWhatAConversionIsMaking(t *testing.T) {
	f := newFixture(t)
	fresh := f.layer("in-flight")
	c, err := lifecycle.Collect(context.Background(), f.st, lifecycle.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Removed) != 0 || !f.st.HasLayer(fresh) {
		t.Errorf("removed %v: the in-flight layer must stay", c.Removed)
	}
	if why := c.Kept[rel(f.st, f.st.LayerDir(fresh))]; !strings.Contains(why, "a conversion may be using it") {
		t.Errorf("kept because %q", why)
	}
}

// locks is a Locker whose holder can be a test "conversion".
type locks struct {
	mu   sync.Mutex
	held map[string]*sync.Mutex
}

func (l *locks) Lock(_ context.Context, key string) (func(), error) {
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

// A conversion that holds the leases of a layer and a flat tree while garbage collection
// wants to remove them, and records its image before letting go, keeps both.
func TestCollectWaitsForTheLeaseAndLooksAgain(t *testing.T) {
	f := newFixture(t)
	layer := f.layer("reused")
	cfg := digest("config reused")
	if err := os.MkdirAll(f.st.FlatDir(cfg), 0o755); err != nil { // an old, unreferenced tree
		t.Fatal(err)
	}
	var l locks
	releaseFlat, _ := l.Lock(context.Background(), "flat."+store.Hex(cfg))
	releaseLayer, _ := l.Lock(context.Background(), "layer."+store.Hex(layer))
	done := make(chan *lifecycle.Collection)
	go func() {
		c, err := lifecycle.Collect(context.Background(), f.st, lifecycle.CollectOptions{MinAge: -1, Locks: &l, Now: later(time.Hour)})
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	time.Sleep(100 * time.Millisecond)
	f.image("r.example/apps/reused:1", "reused", layer) // the conversion records its image
	releaseLayer()
	releaseFlat()
	c := <-done
	if len(c.Removed) != 0 || !f.st.HasFlat(cfg) || !f.st.HasLayer(layer) {
		t.Errorf("what was recorded under the leases was collected: %v", c.Removed)
	}
}

func rel(st *store.Store, p string) string {
	r, _ := filepath.Rel(st.Root, p)
	return filepath.ToSlash(r)
}

func diff(a, b map[string]string) string {
	var out []string
	for p, v := range a {
		if b[p] != v {
			out = append(out, fmt.Sprintf("%s: %s -> %s", p, v, b[p]))
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, "created "+p)
		}
	}
	return strings.Join(out, "\n")
}

// Verify finds a removed file, a truncated file, a removed flat tree and a dangling public
// path; Repair removes what they damaged and names the images to convert again.
func TestVerifyFindsDamageAndRepairPreparesReconversion(t *testing.T) {
	f := newFixture(t)
	base, l1, l2, l3 := f.layer("base"), f.layer("one"), f.layer("two"), f.layer("three")
	f.image("r.example/a:1", "a", base, l1)
	f.image("r.example/b:1", "b", l2)
	f.image("r.example/c:1", "c", l3)
	f.image("r.example/d:1", "d", base)
	if ps, err := lifecycle.Verify(f.st); err != nil || len(ps) != 0 {
		t.Fatalf("a sound store: %v, %v", ps, err)
	}
	// Damage: a file removed from a layer, a file truncated in another, a flat tree removed,
	// a public path left dangling, a temporary left behind.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(filepath.Join(f.st.LayerFS(l1), "etc", "one")))
	must(os.Truncate(filepath.Join(f.st.LayerFS(l2), "etc", "two"), 1))
	must(os.RemoveAll(f.st.FlatDir(digest("config c"))))
	must(os.Remove(f.st.PublicPath("r.example/d:1")))
	must(os.Symlink("../.flat/00/nothing", f.st.PublicPath("r.example/d:1")))
	must(os.MkdirAll(filepath.Join(f.st.LayersDir(), "ab", ".tmp-abc-1"), 0o755))
	ps, err := lifecycle.Verify(f.st)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"r.example/a:1: " + rel(f.st, f.st.LayerFS(l1)) + ": the layer was changed: files 0, recorded 1",
		"r.example/b:1: " + rel(f.st, f.st.LayerFS(l2)) + ": the layer was changed: bytes 1, recorded 3",
		"r.example/c:1: " + rel(f.st, f.st.FlatDir(digest("config c"))) + ": the flat tree is missing",
		"r.example/d:1: r.example/d:1: the public path links to ../.flat/00/nothing",
		".layers/ab/.tmp-abc-1: a temporary left behind",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("Verify did not report %q; it reported:\n%s", want, all)
		}
	}
	again, err := lifecycle.Repair(f.st, ps)
	if err != nil {
		t.Fatal(err)
	}
	// a (damaged layer), b (damaged layer), c (flat tree), d (public path); d shares base with
	// a but base is sound, so only its own problem counts.
	if want := []string{"http://r.example/a:1", "http://r.example/b:1", "http://r.example/c:1", "http://r.example/d:1"}; !slices.Equal(again, want) {
		t.Errorf("to convert again: %v, want %v", again, want)
	}
	for _, gone := range []string{f.st.LayerDir(l1), f.st.LayerDir(l2), f.st.ManifestPath("r.example/a:1"), f.st.FlatDir(digest("config a")),
		filepath.Join(f.st.LayersDir(), "ab", ".tmp-abc-1")} {
		if _, err := os.Lstat(gone); err == nil {
			t.Errorf("%s is still there after Repair", gone)
		}
	}
	for _, kept := range []string{f.st.LayerDir(base), f.st.LayerDir(l3)} {
		if _, err := os.Lstat(kept); err != nil {
			t.Errorf("Repair removed the sound %s", kept)
		}
	}
}
