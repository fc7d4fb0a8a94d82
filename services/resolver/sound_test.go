package resolver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus/metric"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
)

// soundStore is a converted image in s's store whose layers and flat tree hold files and
// record their tallies, as the ingester and flattener leave them.
type soundStore struct {
	st     *store.Store
	name   string
	desc   *events.Description
	layers []string
}

func newSoundStore(t testing.TB, s *Service, host string, filesPerLayer int) *soundStore {
	t.Helper()
	desc := eventstest.Describe(t, demo(t, "demo/hello:1.0").Image, host, "demo/hello", "1.0")
	st := store.New(filepath.Join(s.StoreRoot, eventstest.Job("x").CvmfsRepo))
	name := host + "/demo/hello:1.0"
	writeStore(t, st, name, desc.Image.ConfigDigest, storeState{manifest: desc.Manifest, flat: true, public: true})
	x := &soundStore{st: st, name: name, desc: desc}
	for i, l := range desc.Layers {
		x.layers = append(x.layers, l.Digest)
		fill(t, st.LayerFS(l.Digest), i, filesPerLayer)
		tally, err := layer.Count(st.LayerFS(l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		if err := layer.WriteMeta(st.LayerMeta(l.Digest), &layer.Meta{Tally: &tally}); err != nil {
			t.Fatal(err)
		}
	}
	flat := st.FlatDir(desc.Image.ConfigDigest)
	fill(t, flat, 99, filesPerLayer)
	tally, err := layer.Count(flat)
	if err != nil {
		t.Fatal(err)
	}
	writeRecord(t, st, name, lifecycle.Record{Image: "http://" + name, Flat: &tally, ManifestDigest: desc.Image.Digest})
	return x
}

// fill puts n small files into dir, 100 a directory.
func fill(t testing.TB, dir string, seed, n int) {
	t.Helper()
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i/100))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%d", i)), []byte(fmt.Sprintf("layer %d file %d\n", seed, i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// wishIn handles a wish for image in run and says whether it was found already converted.
func wishIn(t *testing.T, s *Service, b *eventstest.Bus, image, run string) bool {
	t.Helper()
	b.Reset()
	job := eventstest.Job(image)
	job.CorrelationID = run
	return resolved(t, s, b, job).AlreadyConverted
}

// A file removed inside a layer makes the image not converted: the layer's layerfs goes (the
// ingester brings it back) and the flat tree with it; within one run each layer is walked
// once (damage after the walk shows at the next run); --trust-store does not walk.
func TestDamageInsideALayerIsNoticed(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	s, b := newService(t)
	reg := prometheus.NewRegistry()
	s.Metrics = NewMetrics(reg)
	x := newSoundStore(t, s, host, 10)
	image := "http://" + host + "/demo/hello:1.0"
	if !wishIn(t, s, b, image, "run-1") {
		t.Fatal("an undamaged store is not already converted")
	}
	victim := x.layers[0]
	if err := os.Remove(filepath.Join(x.st.LayerFS(victim), "d0", "f3")); err != nil {
		t.Fatal(err)
	}
	if !wishIn(t, s, b, image, "run-1") {
		t.Error("the same run walked the layer again")
	}
	s.TrustStore = true
	if !wishIn(t, s, b, image, "run-2") {
		t.Error("TrustStore: the layer was walked")
	}
	s.TrustStore = false
	if wishIn(t, s, b, image, "run-3") {
		t.Fatal("a layer with a file removed is already converted")
	}
	if got := len(b.OfType(events.LayerRequestedType)); got != len(x.layers) {
		t.Errorf("%d layer.requested, want %d", got, len(x.layers))
	}
	if x.st.HasLayer(victim) || x.st.HasFlat(x.desc.Image.ConfigDigest) {
		t.Error("the damaged layerfs or the flat tree built from it is still there")
	}
	if _, err := os.Stat(x.st.LayerMeta(victim)); err != nil {
		t.Errorf("the damaged layer's metadata (origin.json) went too: %v", err)
	}
	for _, l := range x.layers[1:] {
		if !x.st.HasLayer(l) {
			t.Errorf("undamaged layer %s was removed", l)
		}
	}
	got, err := metric.Scrape(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"layer", "flat"} {
		if k := `flatbed_resolver_mended_total{part="` + part + `"}`; got[k] != 1 {
			t.Errorf("%s = %v, want 1", k, got[k])
		}
	}
}

// A flat tree whose file was cut short is removed and built again; the layers stay.
func TestDamagedFlatTreeIsNoticed(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	s, b := newService(t)
	x := newSoundStore(t, s, host, 10)
	flat := x.st.FlatDir(x.desc.Image.ConfigDigest)
	if err := os.Truncate(filepath.Join(flat, "d0", "f1"), 1); err != nil {
		t.Fatal(err)
	}
	if wishIn(t, s, b, "http://"+host+"/demo/hello:1.0", "run-1") {
		t.Fatal("a flat tree with a file cut short is already converted")
	}
	if x.st.HasFlat(x.desc.Image.ConfigDigest) {
		t.Error("the damaged flat tree is still there")
	}
	for _, l := range x.layers {
		if !x.st.HasLayer(l) {
			t.Errorf("layer %s was removed", l)
		}
	}
}

// BenchmarkSound is what a run's first look at one converted image costs: its layers and
// flat tree walked against their tallies (3 layers and a flat tree of files each, as
// -files sets; page cache warm, as on a re-run).
func BenchmarkSound(b *testing.B) {
	for _, files := range []int{100, 2000} {
		b.Run(fmt.Sprintf("files=%d", files), func(b *testing.B) {
			host := registrytest.Serve(b, nil)
			pushDemo(b, host)
			s, _ := newService(b)
			x := newSoundStore(b, s, host, files)
			r := &resolution{Descs: []*events.Description{{Image: x.desc.Image}}}
			job := eventstest.Job("http://" + x.name)
			log := quietLog()
			b.ResetTimer()
			for i := range b.N {
				job.CorrelationID = fmt.Sprint("run-", i)
				if ok, err := s.sound(context.Background(), x.st, job, r, log); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64((len(x.layers)+1)*files), "µs/file")
		})
	}
}

// failingLocks refuses every lease, as a bus that lost its server does.
type failingLocks struct{}

func (failingLocks) Lock(context.Context, string) (func(), error) {
	return nil, errors.New("no lease: the bus is gone")
}

// Damage that cannot be mended now (here its lease cannot be taken) hands the wish back to
// be tried again: it is not the wish's fault, so it is not a permanent failure.
func TestUnmendableNowIsTriedAgain(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	s, _ := newService(t)
	s.Locks = failingLocks{}
	x := newSoundStore(t, s, host, 10)
	if err := os.Remove(filepath.Join(x.st.LayerFS(x.layers[0]), "d0", "f3")); err != nil {
		t.Fatal(err)
	}
	job := eventstest.Job("http://" + host + "/demo/hello:1.0")
	err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1))
	if err == nil || events.IsPermanent(err) {
		t.Errorf("Handle = %v, want an error to try again", err)
	}
	if !x.st.HasLayer(x.layers[0]) {
		t.Error("the layer was removed without its lease")
	}
}

// A resolver whose store is mounted read-only (as deploy/ mounts it) finds damage it cannot
// remove: the wish fails at once saying what to do, instead of being tried again for nothing
// or reported converted while the damage stays.
func TestUnmendableByThisResolverFailsSayingWhatToDo(t *testing.T) {
	host := registrytest.Serve(t, nil)
	pushDemo(t, host)
	s, _ := newService(t)
	s.removeAll = func(dir string) error { return &os.PathError{Op: "unlinkat", Path: dir, Err: syscall.EROFS} }
	x := newSoundStore(t, s, host, 10)
	if err := os.Remove(filepath.Join(x.st.LayerFS(x.layers[0]), "d0", "f3")); err != nil {
		t.Fatal(err)
	}
	job := eventstest.Job("http://" + host + "/demo/hello:1.0")
	err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1))
	if err == nil || !events.IsPermanent(err) {
		t.Fatalf("Handle = %v, want a permanent failure", err)
	}
	for _, want := range []string{"changed since it was made", "read-only file system", "verify", "--repair", "--trust-store"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
}
