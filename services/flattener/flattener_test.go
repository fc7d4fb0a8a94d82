package flattener

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/store"
)

const testRepo = "unpacked.cern.ch"

func demo(t *testing.T, ref string) imagegen.Named {
	t.Helper()
	for _, n := range imagegen.Demo() {
		if n.Ref() == ref {
			return n
		}
	}
	t.Fatalf("no demo image %s", ref)
	return imagegen.Named{}
}

type setup struct {
	s     *Service
	b     *eventstest.Bus
	descs *eventstest.Descriptions
	st    *store.Store
	n     imagegen.Named
	desc  *events.Description // what the resolver stored
	img   events.Image        // desc.Image, what the events carry
	job   events.Job
}

// newSetup is a flattener whose description store holds image ref under name, as the
// resolver leaves it.
func newSetup(t *testing.T, ref, name string) *setup {
	t.Helper()
	b := &eventstest.Bus{}
	descs := &eventstest.Descriptions{}
	s := &Service{StoreRoot: t.TempDir(), Bus: b, Log: quietLog(), MaxAttempts: 3, Descriptions: descs}
	n := demo(t, ref)
	desc := describe(t, n, name)
	if err := descs.Put(context.Background(), desc); err != nil {
		t.Fatal(err)
	}
	job := events.Job{WishID: "wish-1", CorrelationID: "run-1", Image: "https://" + name, CvmfsRepo: testRepo}
	return &setup{s: s, b: b, descs: descs, st: store.New(filepath.Join(s.StoreRoot, testRepo)), n: n, desc: desc, img: desc.Image, job: job}
}

func (x *setup) ingestAll(t *testing.T) {
	t.Helper()
	for i := range x.desc.Layers {
		ingest(t, x.st, x.n, i)
	}
}

// ingested is the layer.ingested event of layer index.
func (x *setup) ingested(index int) events.LayerIngested {
	l := x.desc.Layers[index]
	hex := store.Hex(l.Digest)
	return events.LayerIngested{Job: x.job, Image: x.img, Index: index, Layer: l, Path: ".layers/" + hex[:2] + "/" + hex + "/layerfs"}
}

// handle delivers the layer.ingested event of layer index.
func (x *setup) handle(t *testing.T, index, attempt int) error {
	t.Helper()
	return x.handleBy(t, x.s, index, attempt)
}

// handleBy delivers the layer.ingested event of layer index to s.
func (x *setup) handleBy(t *testing.T, s *Service, index, attempt int) error {
	t.Helper()
	in := x.ingested(index)
	return s.Handle(context.Background(), eventstest.Delivery(t, events.LayerIngestedType, x.job, in, attempt))
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestWaitsForAllLayers(t *testing.T) {
	x := newSetup(t, "demo/hello:2.0", "registry.example/demo/hello:2.0")
	ingest(t, x.st, x.n, 0)
	ingest(t, x.st, x.n, 2) // layer 1 is still missing
	// (A layer.ingested for layer 1 itself would say it was ingested and is gone: join_test.go.)
	for _, i := range []int{0, 2, 0} {
		if err := x.handle(t, i, 1); err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
	}
	if len(x.b.Envelopes()) != 0 {
		t.Errorf("published %v before every layer was in the store", x.b.Types())
	}
	for _, p := range []string{filepath.Join(x.st.Root, ".flat"), x.st.PublicPath(x.img.Name), x.st.ManifestPath(x.img.Name)} {
		if exists(p) {
			t.Errorf("%s exists before every layer was in the store", p)
		}
	}
}

func TestFlatten(t *testing.T) {
	tests := []struct {
		ref, name  string
		wantTarget string            // the public symlink
		files      map[string]string // path in the flat tree -> content
	}{
		{"demo/hello:1.0", "registry.example/demo/hello:1.0", "../../.flat/", map[string]string{
			"app/message.txt": "Hello from flatbed demo 1.0!\n",
			"etc/motd":        "Welcome to the flatbed demo image.\n",
		}},
		{"demo/hello:2.0", "registry.example/demo/hello:2.0", "../../.flat/", map[string]string{
			"app/message.txt": "Hello from flatbed demo 2.0!\n",
			"app/CHANGES":     "2.0: a new message\n",
		}},
		{"demo/tools:latest", "registry.example/demo/tools:latest", "../../.flat/", map[string]string{
			"usr/local/bin/tool-b-again": "#!/bin/sh\necho tool b\n",
			"bin/greet":                  "#!/bin/sh\necho \"$(cat /app/message.txt)\"\n",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			x := newSetup(t, tt.ref, tt.name)
			x.ingestAll(t)
			if err := x.handle(t, len(x.desc.Layers)-1, 1); err != nil {
				t.Fatal(err)
			}
			if got := x.b.Types(); !slices.Equal(got, []string{events.ImageFlattenedType}) {
				t.Fatalf("published %v, want one %s", got, events.ImageFlattenedType)
			}
			out := eventstest.Decode[events.ImageFlattened](t, x.b.Envelopes()[0])
			hex := store.Hex(x.img.ConfigDigest)
			wantFlat := ".flat/" + hex[:2] + "/" + hex
			if out.FlatPath != wantFlat || out.PublicPath != tt.name || out.AlreadyPresent {
				t.Errorf("ImageFlattened = flat %q public %q present %v; want %q %q false", out.FlatPath, out.PublicPath, out.AlreadyPresent, wantFlat, tt.name)
			}
			if !reflect.DeepEqual(out.Job, x.job) || out.Image != x.img {
				t.Errorf("ImageFlattened job/image not passed on: %+v", out.Job)
			}
			flat := filepath.Join(x.st.Root, wantFlat)
			for p, want := range tt.files {
				got, err := os.ReadFile(filepath.Join(flat, p))
				if err != nil {
					t.Error(err)
					continue
				}
				if string(got) != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}
			// The public path: a relative link as deep as the name.
			target, err := os.Readlink(x.st.PublicPath(tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.wantTarget + hex[:2] + "/" + hex; target != want {
				t.Errorf("public link -> %q, want %q", target, want)
			}
			if a, b := statIno(t, x.st.PublicPath(tt.name)), ino(t, flat); a != b {
				t.Errorf("public link does not lead to the flat tree")
			}
			// The manifest, byte for byte.
			m, err := os.ReadFile(x.st.ManifestPath(tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if string(m) != string(x.desc.Manifest) {
				t.Errorf("manifest.json = %s\nwant %s", m, x.desc.Manifest)
			}
			if cfg, err := store.ReadManifestConfig(x.st.ManifestPath(tt.name)); err != nil || cfg != x.img.ConfigDigest {
				t.Errorf("manifest config = %q, %v; want %s", cfg, err, x.img.ConfigDigest)
			}
			checkSingularity(t, flat, x.desc.Config.Env)
			checkNoTemporaries(t, x.st)
		})
	}
}

func statIno(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func checkSingularity(t *testing.T, flat string, env []string) {
	t.Helper()
	for _, d := range []string{"actions", "env", "libs"} {
		if fi, err := os.Stat(filepath.Join(flat, ".singularity.d", d)); err != nil || !fi.IsDir() {
			t.Errorf(".singularity.d/%s is not a directory: %v", d, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(flat, ".singularity.d", "runscript")); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf(".singularity.d/runscript missing or not executable: %v", err)
	}
	envFile, err := os.ReadFile(filepath.Join(flat, ".singularity.d", "env", "90-environment.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if len(env) == 0 {
		t.Fatal("test image has no Env")
	}
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		if !strings.Contains(string(envFile), "export "+k+"=") {
			t.Errorf("90-environment.sh does not export %s:\n%s", k, envFile)
		}
	}
	for link, want := range map[string]string{
		"singularity": ".singularity.d/runscript",
		".run":        ".singularity.d/actions/run",
		".exec":       ".singularity.d/actions/exec",
		".shell":      ".singularity.d/actions/shell",
		".test":       ".singularity.d/actions/test",
		"environment": ".singularity.d/env/90-environment.sh",
	} {
		if got, err := os.Readlink(filepath.Join(flat, link)); err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", link, got, err, want)
		}
	}
}

func checkNoTemporaries(t *testing.T, st *store.Store) {
	t.Helper()
	_ = filepath.WalkDir(st.Root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temporary entry left: %s", p)
		}
		return nil
	})
}

func TestPublicPathDepth(t *testing.T) {
	tests := []struct {
		name       string
		wantPrefix string
	}{
		{"registry.example/hello:1.0", "../"},
		{"registry.example/demo/hello:1.0", "../../"},
		{"registry.example/a/b/c/hello:1.0", "../../../../"},
		{"127.0.0.1:5000/demo/hello@" + digestOf(t, demo(t, "demo/hello:1.0")), "../../"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newSetup(t, "demo/hello:1.0", tt.name)
			x.ingestAll(t)
			if err := x.handle(t, 0, 1); err != nil {
				t.Fatal(err)
			}
			target, err := os.Readlink(x.st.PublicPath(tt.name))
			if err != nil {
				t.Fatal(err)
			}
			hex := store.Hex(x.img.ConfigDigest)
			if want := tt.wantPrefix + ".flat/" + hex[:2] + "/" + hex; target != want {
				t.Errorf("public link -> %q, want %q", target, want)
			}
			if statIno(t, x.st.PublicPath(tt.name)) != ino(t, x.st.FlatDir(x.img.ConfigDigest)) {
				t.Error("public link does not resolve to the flat tree")
			}
		})
	}
}

func digestOf(t *testing.T, n imagegen.Named) string {
	t.Helper()
	d, err := n.Image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func TestFlattenAgain(t *testing.T) {
	x := newSetup(t, "demo/hello:2.0", "registry.example/demo/hello:2.0")
	x.ingestAll(t)
	if err := x.handle(t, 2, 1); err != nil {
		t.Fatal(err)
	}
	flat := x.st.FlatDir(x.img.ConfigDigest)
	paths := []string{flat, filepath.Join(flat, "app/message.txt"), filepath.Join(flat, ".singularity.d/runscript"),
		x.st.PublicPath(x.img.Name), x.st.ManifestPath(x.img.Name)}
	// Age the manifest so a rewrite within the same clock tick would still show.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(x.st.ManifestPath(x.img.Name), old, old); err != nil {
		t.Fatal(err)
	}
	before := map[string]uint64{}
	for _, p := range paths {
		before[p] = ino(t, p)
	}
	first := x.b.Envelopes()[0]
	x.b.Reset()

	// Every layer's event comes again (the other layers' deliveries, or redeliveries).
	for i := range x.desc.Layers {
		if err := x.handle(t, i, 1); err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
	}
	if got := len(x.b.OfType(events.ImageFlattenedType)); got != len(x.desc.Layers) {
		t.Fatalf("published %v, want %d %s", x.b.Types(), len(x.desc.Layers), events.ImageFlattenedType)
	}
	for _, env := range x.b.Envelopes() {
		out := eventstest.Decode[events.ImageFlattened](t, env)
		if !out.AlreadyPresent {
			t.Error("second flatten: AlreadyPresent = false")
		}
		if env.ID != first.ID {
			t.Errorf("event id %s, first was %s: JetStream would not drop the duplicate", env.ID, first.ID)
		}
	}
	for _, p := range paths {
		if got := ino(t, p); got != before[p] {
			t.Errorf("%s was rewritten (inode %d -> %d)", p, before[p], got)
		}
	}
	if fi, err := os.Stat(x.st.ManifestPath(x.img.Name)); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("manifest.json mtime changed: %v", err)
	}
}

// A crash after the flat tree was published but before the public path and the manifest
// were written: the next delivery completes them.
func TestFlattenCompletesInterruptedRun(t *testing.T) {
	x := newSetup(t, "demo/hello:1.0", "registry.example/demo/hello:1.0")
	x.ingestAll(t)
	if err := x.handle(t, 1, 1); err != nil {
		t.Fatal(err)
	}
	flatIno := ino(t, x.st.FlatDir(x.img.ConfigDigest))
	for _, p := range []string{x.st.PublicPath(x.img.Name), x.st.ManifestPath(x.img.Name)} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	x.b.Reset()
	if err := x.handle(t, 1, 2); err != nil {
		t.Fatal(err)
	}
	if !exists(x.st.PublicPath(x.img.Name)) || !exists(x.st.ManifestPath(x.img.Name)) {
		t.Error("public path or manifest not restored")
	}
	if ino(t, x.st.FlatDir(x.img.ConfigDigest)) != flatIno {
		t.Error("flat tree rebuilt although it was published")
	}
	if out := eventstest.Decode[events.ImageFlattened](t, x.b.Envelopes()[0]); !out.AlreadyPresent {
		t.Error("AlreadyPresent = false for a published flat tree")
	}
}

// A public path that is a directory cannot become the link: the image fails on the last
// attempt and the directory is left alone.
func TestFlattenPublicPathIsDirectory(t *testing.T) {
	x := newSetup(t, "demo/hello:1.0", "registry.example/demo/hello:1.0")
	x.ingestAll(t)
	if err := os.MkdirAll(filepath.Join(x.st.PublicPath(x.img.Name), "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := x.handle(t, 1, 1); err == nil {
		t.Error("first attempt: Handle returned nil, want an error")
	}
	if len(x.b.Envelopes()) != 0 {
		t.Errorf("first attempt published %v", x.b.Types())
	}
	if err := x.handle(t, 1, 3); err != nil {
		t.Fatalf("last attempt: %v", err)
	}
	if got := x.b.Types(); !slices.Equal(got, []string{events.ImageFailedType}) {
		t.Fatalf("last attempt published %v, want only %s", got, events.ImageFailedType)
	}
	if exists(x.st.ManifestPath(x.img.Name)) {
		t.Error("manifest.json written although the public path failed: the image would count as converted")
	}
	if !exists(filepath.Join(x.st.PublicPath(x.img.Name), "keep")) {
		t.Error("the directory at the public path was touched")
	}
}

func TestFlattenBrokenLayer(t *testing.T) {
	x := newSetup(t, "demo/hello:1.0", "registry.example/demo/hello:1.0")
	ingest(t, x.st, x.n, 0)
	// Layer 1 looks present (layerfs) but has no layer.json.
	if err := os.MkdirAll(x.st.LayerFS(x.desc.Layers[1].Digest), 0o755); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt < 3; attempt++ {
		if err := x.handle(t, 1, attempt); err == nil {
			t.Errorf("attempt %d: Handle returned nil, want an error (redelivery)", attempt)
		}
	}
	if len(x.b.Envelopes()) != 0 {
		t.Errorf("published %v before the last attempt", x.b.Types())
	}
	if x.st.HasFlat(x.img.ConfigDigest) || exists(x.st.PublicPath(x.img.Name)) {
		t.Error("flat tree or public path exists after a failure")
	}
	checkNoTemporaries(t, x.st)
	if err := x.handle(t, 1, 3); err != nil {
		t.Fatalf("last attempt: %v", err)
	}
	if got := x.b.Types(); !slices.Equal(got, []string{events.ImageFailedType}) {
		t.Fatalf("last attempt published %v, want only %s", got, events.ImageFailedType)
	}
	f := eventstest.Decode[events.ImageFailed](t, x.b.Envelopes()[0])
	if f.Stage != Name || f.Image == nil || f.Image.ConfigDigest != x.img.ConfigDigest || f.Error == "" {
		t.Errorf("ImageFailed = %+v", f)
	}
}

// slowBus is a bus whose publishing of a built (not already present) image.flattened takes
// a while, as a real one's may: what others publish meanwhile is recorded first.
type slowBus struct{ *eventstest.Bus }

func (b slowBus) Publish(ctx context.Context, env *events.Envelope) error {
	if env.Type == events.ImageFlattenedType {
		var out events.ImageFlattened
		if err := events.Decode(&env.Event, &out); err == nil && !out.AlreadyPresent {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return b.Bus.Publish(ctx, env)
}

// locker is an in-memory events.Locker shared by the services of one test, standing in for
// the bus's leases between processes.
type locker struct{ m sync.Map }

func (l *locker) Lock(ctx context.Context, key string) (func(), error) {
	mu, _ := l.m.LoadOrStore(key, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock, nil
}

// The last layers of an image often arrive together. Of their image.flattened events (one id
// per wish and image) JetStream keeps the first, so the first published must be the one that
// says the tree was built: exactly one says so, and it comes first.
func TestFlattenConcurrentDeliveries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		processes int
	}{
		{"one process", 1},
		{"two processes", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newSetup(t, "demo/hello:1.0", "registry.example/demo/hello:1.0")
			x.ingestAll(t)
			locks := &locker{}
			services := []*Service{x.s}
			x.s.Bus = slowBus{x.b}
			if tc.processes == 2 {
				x.s.Locks = locks
				services = append(services, &Service{StoreRoot: x.s.StoreRoot, Bus: slowBus{x.b}, Log: quietLog(), MaxAttempts: 3,
					Descriptions: x.descs, Locks: locks})
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, len(x.desc.Layers))
			for i := range x.desc.Layers {
				s := services[i%len(services)]
				wg.Go(func() {
					<-start
					errs[i] = x.handleBy(t, s, i, 1)
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("layer %d: %v", i, err)
				}
			}
			envs := x.b.OfType(events.ImageFlattenedType)
			if len(envs) != len(x.desc.Layers) || len(x.b.Envelopes()) != len(envs) {
				t.Fatalf("published %v, want %d %s", x.b.Types(), len(x.desc.Layers), events.ImageFlattenedType)
			}
			built := 0
			for i, env := range envs {
				out := eventstest.Decode[events.ImageFlattened](t, env)
				if !out.AlreadyPresent {
					built++
					if i != 0 {
						t.Errorf("the image.flattened that says the tree was built is number %d; JetStream keeps only the first", i+1)
					}
				}
				if env.ID != envs[0].ID {
					t.Errorf("event %d has id %s, the first %s", i, env.ID, envs[0].ID)
				}
			}
			if built != 1 {
				t.Errorf("%d image.flattened events say the tree was built, want exactly 1", built)
			}
			checkNoTemporaries(t, x.st)
		})
	}
}

// An image whose description was never stored (its event did not come from the resolver, or
// the store lost it) cannot be flattened however often it is tried.
func TestFlattenNoDescription(t *testing.T) {
	x := newSetup(t, "demo/hello:1.0", "registry.example/demo/hello:1.0")
	x.ingestAll(t)
	x.s.Descriptions = &eventstest.Descriptions{} // empty
	err := x.handle(t, 1, 1)
	if !events.IsPermanent(err) || !errors.Is(err, events.ErrNoDescription) {
		t.Fatalf("Handle returned %v, want a permanent error wrapping ErrNoDescription", err)
	}
	if got := x.b.Types(); len(got) != 0 {
		t.Errorf("published %v, want nothing (the bus reports the failure)", got)
	}
	if x.st.HasFlat(x.img.ConfigDigest) || exists(x.st.PublicPath(x.img.Name)) || exists(x.st.ManifestPath(x.img.Name)) {
		t.Error("flat tree, public path or manifest written without a description")
	}
}
