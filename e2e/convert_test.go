package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/store"
	"flatbed.dev/pkg/thin"
	"flatbed.dev/pkg/treecmp"
)

// singularityFiles are what the flattener adds at the root; umoci's tree has none of them.
var singularityFiles = map[string]bool{".singularity.d": true, "singularity": true, ".run": true, ".exec": true, ".shell": true, ".test": true, "environment": true}

func notSingularity(rel string) bool {
	top, _, _ := strings.Cut(rel, "/")
	return singularityFiles[top]
}

// TestConvertMatchesUmoci converts the generated corpus from the real registry with the whole
// pipeline in one process and proves every flat tree equal to `umoci raw unpack` of the same
// image, then that converting again fetches and rewrites nothing, and that a moved tag
// ingests only its new layers.
func TestConvertMatchesUmoci(t *testing.T) {
	reg := harness.StartRegistry(t)
	ctx := context.Background()
	imgs := append(imagegen.Corpus(), imagegen.Demo()...)
	var hello1, hello2 imagegen.Named
	for _, img := range imgs {
		switch img.Ref() {
		case imagegen.DemoHello + ":1.0":
			hello1 = img
		case imagegen.DemoHello + ":2.0":
			hello2 = img
		}
	}
	moving := imagegen.Named{Name: "moving/app", Tag: "current", Image: hello1.Image}
	if err := imagegen.Push(ctx, reg.Host, append(imgs, moving)); err != nil {
		t.Fatal(err)
	}
	wished := append(append([]imagegen.Named{}, imgs...), moving)
	wl := mpWriteWishlist(t, reg.Host, wished)
	storeRoot, stateDir := t.TempDir(), t.TempDir()
	notif := filepath.Join(t.TempDir(), "notifications.jsonl")
	args := []string{"convert", wl, "--store-root", storeRoot, "--state-dir", stateDir, "-n", notif}
	out, _ := runFlatbed(t, 0, args...)
	repo := filepath.Join(storeRoot, mpRepo)
	st := store.New(repo)

	t.Run("flat trees equal umoci", func(t *testing.T) {
		refs := map[string]treecmp.Tree{}
		for _, img := range wished {
			ref := img.Ref()
			if img.Twin != "" { // umoci cannot read zstd: compare with the gzip twin
				ref = img.Twin + ":" + img.Tag
			}
			want, ok := refs[ref]
			if !ok {
				want = harness.ReferenceTree(t, reg.Host+"/"+ref)
				refs[ref] = want
			}
			public := st.PublicPath(reg.Host + "/" + img.Ref())
			got, err := treecmp.Walk(public+"/", notSingularity)
			if err != nil {
				t.Fatalf("%s: %v", img.Ref(), err)
			}
			if len(got) == 0 {
				t.Fatalf("%s: empty flat tree at %s", img.Ref(), public)
			}
			for _, d := range treecmp.Diff(want, got) {
				t.Errorf("%s (umoci vs flatbed): %s", img.Ref(), d)
			}
		}
	})

	t.Run("store layout", func(t *testing.T) {
		for _, img := range wished {
			cfg, err := img.Image.ConfigName()
			if err != nil {
				t.Fatal(err)
			}
			name := reg.Host + "/" + img.Ref()
			target, err := os.Readlink(st.PublicPath(name))
			if err != nil {
				t.Fatalf("%s: public path: %v", name, err)
			}
			want := strings.Repeat("../", strings.Count(name, "/")) + ".flat/" + cfg.Hex[:2] + "/" + cfg.Hex
			if target != want {
				t.Errorf("%s -> %s, want %s", name, target, want)
			}
			if got, err := store.ReadManifestConfig(st.ManifestPath(name)); err != nil || got != cfg.String() {
				t.Errorf("%s: .metadata manifest names config %q (%v), want %s", name, got, err, cfg)
			}
			layers, _ := img.Image.Layers()
			for _, l := range layers {
				d, _ := l.Digest()
				b, err := os.ReadFile(filepath.Join(st.LayerMeta(d.String()), "origin.json"))
				if err != nil || !strings.Contains(string(b), cfg.String()) {
					t.Errorf("%s: layer %s origin.json %s (%v) lacks %s", name, d, b, err, cfg)
				}
			}
			env, err := os.ReadFile(filepath.Join(st.FlatDir(cfg.String()), ".singularity.d/env/90-environment.sh"))
			if err != nil || !strings.Contains(string(env), "export PATH=") {
				t.Errorf("%s: 90-environment.sh = %q (%v)", name, env, err)
			}
		}
		filepath.WalkDir(repo, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
				t.Errorf("temporary left behind: %s", p)
			}
			return nil
		})
		if !strings.Contains(out, "converted") {
			t.Errorf("convert output does not report conversions:\n%s", out)
		}
		b, err := os.ReadFile(notif)
		if err != nil {
			t.Fatal(err)
		}
		for _, action := range []string{"start_ducc", "end_ducc", "start_layer_conversion", "end_layer_conversion", "publish_flat_image"} {
			if !strings.Contains(string(b), `"action":"`+action+`"`) {
				t.Errorf("notification file has no %s line", action)
			}
		}
		for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]string
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Errorf("notification line %d is not a flat string object: %v: %s", i+1, err, line)
			}
		}
	})

	t.Run("thin images read back with skopeo", func(t *testing.T) {
		for _, img := range wished {
			ti := readThin(t, reg.Host+"/thin/"+img.Ref())
			if want := "http://" + reg.Host + "/" + img.Ref(); ti.Origin != want {
				t.Errorf("%s: thin origin %q, want %q", img.Ref(), ti.Origin, want)
			}
			layers, _ := img.Image.Layers()
			if len(ti.Layers) != len(layers) {
				t.Fatalf("%s: thin.json has %d layers, want %d", img.Ref(), len(ti.Layers), len(layers))
			}
			for i, l := range layers {
				d, _ := l.Digest()
				wantURL := "cvmfs://" + mpRepo + "/.layers/" + d.Hex[:2] + "/" + d.Hex + "/layerfs"
				if ti.Layers[i].Digest != d.Hex || ti.Layers[i].URL != wantURL {
					t.Errorf("%s: thin layer %d = %+v, want %s %s", img.Ref(), i, ti.Layers[i], d.Hex, wantURL)
				}
				if fi, err := os.Stat(st.LayerFS(d.String())); err != nil || !fi.IsDir() {
					t.Errorf("%s: thin.json points at %s, which the store lacks", img.Ref(), wantURL)
				}
			}
		}
	})

	t.Run("events follow the contract", func(t *testing.T) {
		checkStoredEvents(t, filepath.Join(stateDir, "jetstream"), len(wished))
	})

	t.Run("converting again fetches and rewrites nothing", func(t *testing.T) {
		before := snapshot(t, repo)
		gets := reg.BlobGETs()
		out, _ := runFlatbed(t, 0, args...)
		if n := reg.BlobGETs() - gets; n != 0 {
			t.Errorf("second run fetched %d blobs, want 0", n)
		}
		if c := strings.Count(out, "already converted"); c != len(wished) {
			t.Errorf("%d images reported already converted, want %d:\n%s", c, len(wished), out)
		}
		after := snapshot(t, repo)
		for p, b := range before {
			if a, ok := after[p]; !ok {
				t.Errorf("%s vanished", p)
			} else if a != b {
				t.Errorf("%s was rewritten: %+v -> %+v", p, b, a)
			}
		}
		for p := range after {
			if _, ok := before[p]; !ok {
				t.Errorf("%s appeared", p)
			}
		}
	})

	t.Run("a moved tag ingests only its new layers", func(t *testing.T) {
		if err := imagegen.Push(ctx, reg.Host, []imagegen.Named{{Name: moving.Name, Tag: moving.Tag, Image: hello2.Image}}); err != nil {
			t.Fatal(err)
		}
		old := digests(t, hello1.Image)
		var fresh, shared []string
		for d := range digests(t, hello2.Image) {
			if old[d] {
				shared = append(shared, d)
			} else {
				fresh = append(fresh, d)
			}
		}
		if len(shared) == 0 || len(fresh) == 0 {
			t.Fatalf("demo images must share a base and differ: shared %v fresh %v", shared, fresh)
		}
		// The fresh layers are in the store already through demo/hello:2.0: to see the
		// ingester fetch them, remove them first (nothing else uses them here).
		for _, d := range fresh {
			if err := store.RemoveAll(st.LayerDir(d)); err != nil {
				t.Fatal(err)
			}
		}
		freshGets, sharedGets := reg.BlobGETsOf(fresh...), reg.BlobGETsOf(shared...)
		runFlatbed(t, 0, args...)
		if n := reg.BlobGETsOf(fresh...) - freshGets; n != len(fresh) {
			t.Errorf("fetched the %d new layers %d times, want once each", len(fresh), n)
		}
		if n := reg.BlobGETsOf(shared...) - sharedGets; n != 0 {
			t.Errorf("fetched shared layers %d times, want 0", n)
		}
		cfg, _ := hello2.Image.ConfigName()
		target, _ := os.Readlink(st.PublicPath(reg.Host + "/" + moving.Ref()))
		if !strings.HasSuffix(target, "/"+cfg.Hex) {
			t.Errorf("moved tag points at %s, want the flat of %s", target, cfg)
		}
	})
}

func digests(t *testing.T, img v1.Image) map[string]bool {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range layers {
		d, _ := l.Digest()
		out[d.String()] = true
	}
	return out
}

// readThin copies a thin image out of the registry with skopeo and returns its thin.json.
func readThin(t *testing.T, ref string) thin.Manifest {
	t.Helper()
	image := harness.CopyToOCILayout(t, ref)
	dir, _, _ := strings.Cut(image, ":")
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) != 1 {
		t.Fatalf("%s: layout index %v %v", ref, im, err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := thin.Read(img)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil || len(cf.Config.Env) == 0 || cf.Config.Env[0] != thin.MarkerEnv {
		t.Errorf("%s: thin config env %v (%v), want %s first", ref, cf.Config.Env, err, thin.MarkerEnv)
	}
	return m
}

type fileState struct {
	Ino, Size          uint64
	Mtime, Ctime, Mode int64
}

// snapshot records inode, size, mode and times of every path under root.
func snapshot(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var s syscall.Stat_t
		if err := syscall.Lstat(p, &s); err != nil {
			return err
		}
		out[p] = fileState{Ino: s.Ino, Size: uint64(s.Size), Mtime: s.Mtim.Nano(), Ctime: s.Ctim.Nano(), Mode: int64(s.Mode)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
