package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
