package flattener

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/podman"
	"flatbed.dev/pkg/store"
)

const multiName = "registry.example/multiarch/tool:1"

// multiSetup is a flattener whose description store holds both platforms of imagegen's
// multi-arch index and the index itself, as the resolver leaves them for a -m wish.
type multiSetup struct {
	s     *Service
	b     *eventstest.Bus
	st    *store.Store
	job   events.Job
	index []byte
	plats map[string]*setup // by platform
}

func newMultiSetup(t *testing.T) *multiSetup {
	t.Helper()
	old := Host
	Host = v1.Platform{OS: "linux", Architecture: "amd64"}
	t.Cleanup(func() { Host = old })
	n := imagegen.MultiArch(false)
	raw, err := n.Index.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := n.Index.Digest()
	b := &eventstest.Bus{}
	descs := &eventstest.Descriptions{}
	s := &Service{StoreRoot: t.TempDir(), Bus: b, Log: quietLog(), MaxAttempts: 3, Descriptions: descs}
	if err := descs.PutIndex(context.Background(), idxDigest.String(), raw); err != nil {
		t.Fatal(err)
	}
	job := events.Job{WishID: "wish-m", CorrelationID: "run-m", Image: "https://" + multiName, CvmfsRepo: testRepo, MultiArch: true}
	m := &multiSetup{s: s, b: b, st: store.New(filepath.Join(s.StoreRoot, testRepo)), job: job, index: raw, plats: map[string]*setup{}}
	for p, img := range n.Images {
		named := imagegen.Named{Name: n.Name, Tag: n.Tag, Image: img}
		desc := describe(t, named, multiName)
		desc.Image.Platform, desc.Image.IndexDigest = p, idxDigest.String()
		if err := descs.Put(context.Background(), desc); err != nil {
			t.Fatal(err)
		}
		m.plats[p] = &setup{s: s, b: b, descs: descs, st: m.st, n: named, desc: desc, img: desc.Image, job: job}
	}
	return m
}

// convert ingests and hands every layer of one platform to the flattener (attempt n).
func (m *multiSetup) convert(t *testing.T, platform string, attempt int) error {
	t.Helper()
	x := m.plats[platform]
	x.ingestMissing(t)
	for i := range x.desc.Layers {
		if err := x.handle(t, i, attempt); err != nil {
			return err
		}
	}
	return nil
}

// resolve follows the public path as a CVMFS client with CVMFS_ARCH=arch does: the variant
// symlink's $(CVMFS_ARCH) replaced by arch, then every link followed.
func resolve(t *testing.T, st *store.Store, name, arch string) string {
	t.Helper()
	target, err := os.Readlink(st.PublicPath(name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(target, "$(CVMFS_ARCH)") {
		t.Fatalf("the public path links to %s, not through $(CVMFS_ARCH)", target)
	}
	p := filepath.Join(filepath.Dir(st.PublicPath(name)), strings.ReplaceAll(target, "$(CVMFS_ARCH)", arch))
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatalf("CVMFS_ARCH=%s: %v", arch, err)
	}
	return r
}

// Each platform gets its own flat tree under .multiarch; the public path appears only when
// both are in place, as a variant symlink that lands in each platform's tree for each
// CVMFS_ARCH spelling; the index is recorded as the manifest; one image.flattened names both.
func TestMultiArchFlatten(t *testing.T) {
	m := newMultiSetup(t)
	if err := m.convert(t, "linux/amd64", 1); err != nil {
		t.Fatal(err)
	}
	if exists(m.st.PublicPath(multiName)) || len(m.b.OfType(events.ImageFlattenedType)) != 0 {
		t.Fatal("the public path or image.flattened appeared with one platform of two converted")
	}
	if !exists(m.st.MultiarchPath("amd64", multiName)) {
		t.Fatal("no .multiarch/amd64 link after the amd64 platform was converted")
	}
	if err := m.convert(t, "linux/arm64/v8", 1); err != nil {
		t.Fatal(err)
	}
	flats := m.b.OfType(events.ImageFlattenedType)
	if len(flats) == 0 {
		t.Fatalf("published %v, want image.flattened", m.b.Types())
	}
	out := eventstest.Decode[events.ImageFlattened](t, flats[len(flats)-1])
	if err := out.Validate(); err != nil {
		t.Fatal(err)
	}
	if names, err := podman.Names(m.st.Root); !out.Podman || err != nil || !slices.Contains(names, multiName) {
		t.Errorf("the podman store lists %v (%v), image.flattened says podman %v: want the image under its name", names, err, out.Podman)
	}
	if len(out.Platforms) != 2 || out.Image.Platform != "linux/amd64" || out.PublicPath != multiName {
		t.Errorf("image.flattened: image %s, %d platforms, public path %s", out.Image.Platform, len(out.Platforms), out.PublicPath)
	}
	for arch, want := range map[string]string{"x86_64": "amd64", "amd64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "arm64": "arm64", "arm64:v8": "arm64"} {
		tree := resolve(t, m.st, multiName, arch)
		got, err := os.ReadFile(filepath.Join(tree, "etc", "arch"))
		if err != nil || string(got) != want+"\n" {
			t.Errorf("CVMFS_ARCH=%s lands in %s holding etc/arch %q (%v), want %s", arch, tree, got, err, want)
		}
		env, err := os.ReadFile(filepath.Join(tree, ".singularity.d", "env", "90-environment.sh"))
		if err != nil || !strings.Contains(string(env), "ARCH") || !strings.Contains(string(env), want) {
			t.Errorf("CVMFS_ARCH=%s: the Singularity env does not export ARCH=%s: %q (%v)", arch, want, env, err)
		}
	}
	if got, _ := os.ReadFile(m.st.ManifestPath(multiName)); !bytes.Equal(got, m.index) {
		t.Error("the recorded manifest is not the index")
	}
	rec, idx, ok := lifecycle.ReadMultiarch(m.st, multiName)
	if !ok || !lifecycle.Complete(m.st, multiName, rec) || !bytes.Equal(idx, m.index) || len(rec.Platforms) != 2 {
		t.Errorf("the store does not record a complete multi-arch image: %+v", rec)
	}
}

// A platform that fails fails the wish naming it, and the public path is never switched to
// the platforms that made it.
func TestMultiArchPlatformFails(t *testing.T) {
	m := newMultiSetup(t)
	if err := m.convert(t, "linux/amd64", 1); err != nil {
		t.Fatal(err)
	}
	x := m.plats["linux/arm64/v8"]
	x.ingestMissing(t)
	last := x.desc.Layers[len(x.desc.Layers)-1].Digest
	if err := os.RemoveAll(x.st.LayerMeta(last)); err != nil { // unreadable: the build fails
		t.Fatal(err)
	}
	for i := range x.desc.Layers {
		_ = x.handle(t, i, m.s.MaxAttempts)
	}
	failed := m.b.OfType(events.ImageFailedType)
	if len(failed) == 0 {
		t.Fatalf("published %v, want image.failed", m.b.Types())
	}
	if f := eventstest.Decode[events.ImageFailed](t, failed[0]); !strings.Contains(f.Error, "platform linux/arm64/v8") {
		t.Errorf("image.failed says %q, not naming the platform", f.Error)
	}
	if exists(m.st.PublicPath(multiName)) || exists(m.st.ManifestPath(multiName)) || len(m.b.OfType(events.ImageFlattenedType)) != 0 {
		t.Error("the public path, the recorded index or image.flattened appeared with a platform failed")
	}
}

// ingestMissing ingests the layers of x the store lacks (the platforms share a base layer).
func (x *setup) ingestMissing(t *testing.T) {
	t.Helper()
	for i, l := range x.desc.Layers {
		if !x.st.HasLayer(l.Digest) {
			ingest(t, x.st, x.n, i)
		}
	}
}
