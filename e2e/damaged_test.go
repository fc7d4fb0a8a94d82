package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/store"
)

// A store damaged after a good run — a layer directory removed, a flat tree removed, the
// public path left dangling, a file removed from a layer or cut short in one — is not
// "already converted": the next convert notices (from the stored manifest and a few stat
// calls, no more registry requests than an unchanged image costs) and rebuilds what is gone,
// fetching only the lost layer. An undamaged store still costs a HEAD and no blob.
func TestDamagedStoreIsRebuilt(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := tarOf(t, map[string]string{"etc/os-release": "ID=flatbed-e2e\n"})
	top := tarOf(t, map[string]string{"app/hello": "hello, damaged store\n"})
	gzBase, gzTop := gzipOf(t, base), gzipOf(t, top)
	cfg := configOfEnv(t, []string{sha256Of(base), sha256Of(top)}, []string{"PATH=/bin"})
	rawImage(t, reg.Host, "damaged/app:v1", cfg, []rawLayer{
		{rawBlob{gzBase, types.DockerLayer}, int64(len(gzBase))}, {rawBlob{gzTop, types.DockerLayer}, int64(len(gzTop))}})
	storeRoot := t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	args := []string{"convert", writeRawWishlist(t, reg.Host, []string{"damaged/app:v1"}), "--store-root", storeRoot, "--state-dir", t.TempDir(), "-i"}
	runFlatbed(t, 0, args...)
	st := store.New(filepath.Join(storeRoot, mpRepo))
	name := reg.Host + "/damaged/app:v1"
	check := func(when string) {
		t.Helper()
		for path, want := range map[string]string{"app/hello": "hello, damaged store\n", "etc/os-release": "ID=flatbed-e2e\n"} {
			if got, err := os.ReadFile(filepath.Join(st.PublicPath(name), path)); err != nil || string(got) != want {
				t.Errorf("%s: %s reads %q, %v; want %q", when, path, got, err, want)
			}
		}
		for _, l := range [][]byte{gzBase, gzTop} {
			if !st.HasLayer(sha256Of(l)) {
				t.Errorf("%s: layer %s is not in the store", when, sha256Of(l))
			}
		}
		if got, err := os.ReadFile(filepath.Join(st.LayerFS(sha256Of(gzTop)), "app", "hello")); err != nil || string(got) != "hello, damaged store\n" {
			t.Errorf("%s: the top layer's app/hello reads %q, %v", when, got, err)
		}
	}
	check("first run")
	out, _ := runFlatbed(t, 0, args...)
	if !strings.Contains(out, "already converted") {
		t.Fatalf("an undamaged store is converted again:\n%s", out)
	}

	// A layer directory removed: the layer is fetched again (that blob alone) and unpacked.
	if err := store.RemoveAll(st.LayerDir(sha256Of(gzTop))); err != nil {
		t.Fatal(err)
	}
	topGETs, baseGETs := reg.BlobGETsOf(sha256Of(gzTop)), reg.BlobGETsOf(sha256Of(gzBase))
	out, _ = runFlatbed(t, 0, args...)
	if strings.Contains(out, "already converted") {
		t.Errorf("a store without one of the image's layer directories is said to be converted:\n%s", out)
	}
	if got := reg.BlobGETsOf(sha256Of(gzTop)); got != topGETs+1 {
		t.Errorf("the lost layer was fetched %d times, want once", got-topGETs)
	}
	if got := reg.BlobGETsOf(sha256Of(gzBase)); got != baseGETs {
		t.Errorf("the layer still there was fetched %d times, want none", got-baseGETs)
	}
	check("after a layer directory was removed")

	// The flat tree removed: built again from the layers, nothing fetched.
	flat := st.FlatDir(sha256Of(cfg))
	if _, err := os.Stat(flat); err != nil {
		t.Fatal(err)
	}
	if err := store.RemoveAll(flat); err != nil {
		t.Fatal(err)
	}
	blobs := reg.BlobGETs()
	out, _ = runFlatbed(t, 0, args...)
	if strings.Contains(out, "already converted") {
		t.Errorf("a store without the image's flat tree is said to be converted:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(flat, ".singularity.d", "env", "90-environment.sh")); err != nil {
		t.Errorf("the flat tree was not rebuilt whole: %v", err)
	}
	check("after the flat tree was removed")
	// The config blob is fetched with the manifest; no layer is.
	if got := reg.BlobGETsOf(sha256Of(gzTop), sha256Of(gzBase)); got != topGETs+1+baseGETs {
		t.Errorf("rebuilding the flat tree fetched a layer (%d blob GETs in all since)", reg.BlobGETs()-blobs)
	}

	// The public path dangling (it names a flat tree that is not there): linked again.
	if _, err := store.SymlinkAtomic("../../.flat/00/gone", st.PublicPath(name)); err != nil {
		t.Fatal(err)
	}
	out, _ = runFlatbed(t, 0, args...)
	if strings.Contains(out, "already converted") {
		t.Errorf("a store whose public path dangles is said to be converted:\n%s", out)
	}
	check("after the public path was left dangling")

	// Inside a layer, a file removed or one cut short: the run walks the image's layers and
	// flat tree (an lstat per entry) against the tallies recorded when they were made, and
	// fetches the damaged layer again (that blob alone) and builds the flat tree again. With
	// --trust-store it does not look.
	for _, c := range []struct {
		what   string
		layer  []byte
		damage func(layerfs string) error
	}{
		{"a file removed from the top layer", gzTop, func(fs string) error { return os.Remove(filepath.Join(fs, "app", "hello")) }},
		{"a file cut short in the base layer", gzBase, func(fs string) error { return os.Truncate(filepath.Join(fs, "etc", "os-release"), 2) }},
	} {
		if err := c.damage(st.LayerFS(sha256Of(c.layer))); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(c.layer, gzTop) {
			out, _ = runFlatbed(t, 0, append(slices.Clone(args), "--trust-store")...)
			if !strings.Contains(out, "already converted") {
				t.Errorf("with --trust-store, %s was looked for:\n%s", c.what, out)
			}
		}
		counts := map[string]int{sha256Of(gzTop): reg.BlobGETsOf(sha256Of(gzTop)), sha256Of(gzBase): reg.BlobGETsOf(sha256Of(gzBase))}
		out, _ = runFlatbed(t, 0, args...)
		if strings.Contains(out, "already converted") {
			t.Errorf("a store with %s is said to be converted:\n%s", c.what, out)
		}
		for _, l := range [][]byte{gzTop, gzBase} {
			want := 0
			if bytes.Equal(l, c.layer) {
				want = 1
			}
			if got := reg.BlobGETsOf(sha256Of(l)) - counts[sha256Of(l)]; got != want {
				t.Errorf("after %s, layer %s was fetched %d times, want %d", c.what, sha256Of(l), got, want)
			}
		}
		check("after " + c.what)
		runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot)
	}

	// Mended: the next run is an unchanged image again.
	out, _ = runFlatbed(t, 0, args...)
	if !strings.Contains(out, "already converted") {
		t.Errorf("the mended store is converted again:\n%s", out)
	}
}

// Issue 11's done-when 4, whole: each kind of damage — a file removed from a layer, a file cut
// short in one, the flat tree removed, the public symlink left dangling — is reported by
// verify (status 1, naming what it found), and is mended both by verify --repair and by a
// plain convert run again, after which verify finds the store sound and the image reads as
// it did. A damaged layer's blob is the only one fetched again; a flat tree or a public path
// fetches none.
func TestEachDamageFoundByVerifyAndMendedTwice(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := tarOf(t, map[string]string{"etc/os-release": "ID=flatbed-e2e\n", "etc/motd": "welcome\n"})
	top := tarOf(t, map[string]string{"app/hello": "hello, verified store\n"})
	gzBase, gzTop := gzipOf(t, base), gzipOf(t, top)
	cfg := configOfEnv(t, []string{sha256Of(base), sha256Of(top)}, []string{"PATH=/bin"})
	rawImage(t, reg.Host, "verified/app:v1", cfg, []rawLayer{
		{rawBlob{gzBase, types.DockerLayer}, int64(len(gzBase))}, {rawBlob{gzTop, types.DockerLayer}, int64(len(gzTop))}})
	storeRoot, state := t.TempDir(), t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	convert := []string{"convert", writeRawWishlist(t, reg.Host, []string{"verified/app:v1"}), "--store-root", storeRoot, "--state-dir", state, "-i"}
	runFlatbed(t, 0, convert...)
	st := store.New(filepath.Join(storeRoot, mpRepo))
	name := reg.Host + "/verified/app:v1"
	want := map[string]string{"app/hello": "hello, verified store\n", "etc/os-release": "ID=flatbed-e2e\n", "etc/motd": "welcome\n"}
	rel := func(p string) string { r, _ := filepath.Rel(st.Root, p); return r }
	flat := st.FlatDir(sha256Of(cfg))
	damages := []struct {
		what    string
		damage  func() error
		reports string // in verify's report
		fetched []byte // the layer fetched again, nil: none
	}{
		{"a file removed from a layer", func() error { return os.Remove(filepath.Join(st.LayerFS(sha256Of(gzTop)), "app", "hello")) },
			rel(st.LayerFS(sha256Of(gzTop))) + ": the layer was changed", gzTop},
		{"a file cut short in a layer", func() error { return os.Truncate(filepath.Join(st.LayerFS(sha256Of(gzBase)), "etc", "os-release"), 3) },
			rel(st.LayerFS(sha256Of(gzBase))) + ": the layer was changed", gzBase},
		{"the flat tree removed", func() error { return store.RemoveAll(flat) }, rel(flat) + ": the flat tree is missing", nil},
		{"the public symlink dangling", func() error {
			_, err := store.SymlinkAtomic("../../.flat/00/gone", st.PublicPath(name))
			return err
		}, name + ": the public path links to ../../.flat/00/gone", nil},
	}
	for _, d := range damages {
		for _, mend := range []string{"verify --repair", "convert"} {
			if err := d.damage(); err != nil {
				t.Fatal(err)
			}
			out, _ := runFlatbed(t, 1, "verify", mpRepo, "--store-root", storeRoot)
			if !strings.Contains(out, d.reports) {
				t.Errorf("%s: verify did not report %q:\n%s", d.what, d.reports, out)
			}
			before := map[string]int{sha256Of(gzTop): reg.BlobGETsOf(sha256Of(gzTop)), sha256Of(gzBase): reg.BlobGETsOf(sha256Of(gzBase))}
			if mend == "convert" {
				out, _ = runFlatbed(t, 0, convert...)
				if strings.Contains(out, "already converted") {
					t.Errorf("%s: convert says already converted:\n%s", d.what, out)
				}
			} else {
				runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot, "--state-dir", state, "--repair")
			}
			for _, l := range [][]byte{gzTop, gzBase} {
				n := 0
				if d.fetched != nil && bytes.Equal(l, d.fetched) {
					n = 1
				}
				if got := reg.BlobGETsOf(sha256Of(l)) - before[sha256Of(l)]; got != n {
					t.Errorf("%s, mended by %s: layer %s fetched %d times, want %d", d.what, mend, sha256Of(l), got, n)
				}
			}
			if out, _ := runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot); !strings.Contains(out, "sound") {
				t.Errorf("%s, mended by %s: verify says\n%s", d.what, mend, out)
			}
			for p, content := range want {
				if got, err := os.ReadFile(filepath.Join(st.PublicPath(name), p)); err != nil || string(got) != content {
					t.Errorf("%s, mended by %s: %s reads %q, %v; want %q", d.what, mend, p, got, err, content)
				}
			}
		}
	}
	if out, _ := runFlatbed(t, 0, convert...); !strings.Contains(out, "already converted") {
		t.Errorf("the mended store is converted again:\n%s", out)
	}
}

// A multi-arch image (-m) is checked platform by platform: a file removed from a layer only
// one platform has makes the plain re-run fetch that layer again (that blob alone) and build
// that platform's tree again, and the next run is "already converted" from one HEAD again.
func TestMultiArchDamageMendedByARerun(t *testing.T) {
	reg := harness.StartRegistry(t)
	good := pushMultiArch(t, reg.Host)
	pub := reg.Host + "/" + good.Ref()
	storeRoot := t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	st := store.New(filepath.Join(storeRoot, mpRepo))
	args := []string{"convert", writeMultiWishlist(t, reg.Host, good.Ref()), "--store-root", storeRoot, "--state-dir", t.TempDir(), "-m", "-i"}
	runFlatbed(t, 0, args...)
	layersOf := func(dir string) []string {
		raw, err := os.ReadFile(filepath.Join(st.MultiarchMetadataDir(dir, pub), "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range m.Layers {
			out = append(out, l.Digest.String())
		}
		return out
	}
	amd, arm := layersOf("amd64"), layersOf("arm64:v8")
	var victim string
	for _, l := range arm {
		if !slices.Contains(amd, l) {
			victim = l
		}
	}
	if victim == "" {
		t.Fatal("the arm64 platform has no layer of its own: fix the test")
	}
	var file string
	err := filepath.WalkDir(st.LayerFS(victim), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && file == "" {
			file = p
		}
		return err
	})
	if err != nil || file == "" {
		t.Fatalf("no file in the arm64 layer %s: %v", victim, err)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, l := range append(slices.Clone(amd), arm...) {
		counts[l] = reg.BlobGETsOf(l)
	}
	out, _ := runFlatbed(t, 0, args...)
	if l := resultLine(t, out, "http://"+pub); strings.Contains(l, "already converted") {
		t.Errorf("a multi-arch image with a file removed from a layer is already converted: %s", l)
	}
	for l, before := range counts {
		want := 0
		if l == victim {
			want = 1
		}
		if got := reg.BlobGETsOf(l) - before; got != want {
			t.Errorf("layer %s fetched %d times, want %d", l, got, want)
		}
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the removed file is not back: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(cvmfsResolve(t, st, pub, "aarch64"), "etc", "arch")); err != nil || string(got) != "arm64\n" {
		t.Errorf("the arm64 tree's etc/arch reads %q, %v", got, err)
	}
	runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot)
	out, _ = runFlatbed(t, 0, args...)
	if l := resultLine(t, out, "http://"+pub); !strings.Contains(l, "already converted") {
		t.Errorf("the mended multi-arch image is converted again: %s", l)
	}
}
