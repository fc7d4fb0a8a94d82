package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/store"
)

// podmanWith runs podman with the repository's podman store as its additional image store.
func podmanWith(t *testing.T, repo string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is not installed: scripts/install-test-deps.sh installs it")
	}
	tmp := t.TempDir()
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(tmp, "graph", "overlay"), unix.MNT_DETACH) })
	full := append([]string{"--root", filepath.Join(tmp, "graph"), "--runroot", filepath.Join(tmp, "run"), "--storage-driver", "overlay",
		"--storage-opt", "additionalimagestore=" + filepath.Join(repo, "podmanStore")}, args...)
	out, err := exec.Command("podman", full...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// A repository's life: two converted images sharing a base are listed by podman through the
// podman store; one is deleted (podman forgets it), garbage collection then removes exactly
// its own layer and tree; damage to the other is found by verify and mended by --repair.
func TestRepositoryLifecycle(t *testing.T) {
	reg := harness.StartRegistry(t)
	refs, own := imagesOnABase(t, reg.Host, "one", "two")
	// The base imagesOnABase pushes under both (tarOf and gzipOf give the same bytes again).
	baseDigest := sha256Of(gzipOf(t, tarOf(t, map[string]string{"etc/os-release": "ID=flatbed-e2e\n"})))
	storeRoot, state := t.TempDir(), t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	wl := writeRawWishlist(t, reg.Host, refs)
	runFlatbed(t, 0, "convert", wl, "--store-root", storeRoot, "--state-dir", state, "-i")
	repo := filepath.Join(storeRoot, mpRepo)
	st := store.New(repo)
	one, two := reg.Host+"/apps/one:v1", reg.Host+"/apps/two:v1"

	// podman lists and inspects both through the podman store.
	listed := podmanWith(t, repo, "images", "--format", "{{.Repository}}:{{.Tag}}")
	for _, n := range []string{one, two} {
		if !strings.Contains(listed, n) {
			t.Errorf("podman images does not list %s:\n%s", n, listed)
		}
	}
	var inspect []struct{ Config struct{ Env []string } }
	if err := json.Unmarshal([]byte(podmanWith(t, repo, "image", "inspect", two)), &inspect); err != nil || len(inspect) != 1 || !slices.Contains(inspect[0].Config.Env, "WHO=two") {
		t.Errorf("podman image inspect %s: %+v (%v)", two, inspect, err)
	}

	// Delete one: its names go, podman forgets it, its files stay until collected.
	runFlatbed(t, 0, "delete-image", mpRepo, "http://"+one, "--store-root", storeRoot)
	if _, err := os.Lstat(st.PublicPath(one)); err == nil {
		t.Error("the deleted image's public path is still there")
	}
	if listed := podmanWith(t, repo, "images", "--format", "{{.Repository}}:{{.Tag}}"); strings.Contains(listed, one) || !strings.Contains(listed, two) {
		t.Errorf("after delete-image podman lists:\n%s", listed)
	}
	ownLayer := st.LayerDir(own["one"])
	if !st.HasLayer(own["one"]) {
		t.Fatal("delete-image removed a layer: only garbage-collection may")
	}
	// Within the minimum age nothing is collected; a dry run changes nothing.
	out, _ := runFlatbed(t, 0, "gc", mpRepo, "--store-root", storeRoot)
	if strings.Contains(out, "removed") || !strings.Contains(out, "kept") {
		t.Errorf("gc within the minimum age:\n%s", out)
	}
	out, _ = runFlatbed(t, 0, "gc", mpRepo, "--store-root", storeRoot, "--min-age", "-1s", "--dry-run")
	if !strings.Contains(out, "would remove") || !st.HasLayer(own["one"]) {
		t.Errorf("gc --dry-run:\n%s", out)
	}
	out, _ = runFlatbed(t, 0, "gc", mpRepo, "--store-root", storeRoot, "--min-age", "-1s")
	if _, err := os.Lstat(ownLayer); err == nil {
		t.Errorf("gc left the deleted image's own layer:\n%s", out)
	}
	for _, keep := range []string{baseDigest, own["two"]} {
		if !st.HasLayer(keep) {
			t.Errorf("gc removed layer %s, which %s uses:\n%s", keep, two, out)
		}
	}
	if got, err := os.ReadFile(filepath.Join(st.PublicPath(two), "app", "two")); err != nil || string(got) != "I am two\n" {
		t.Errorf("after gc %s reads %q, %v", two, got, err)
	}

	// Damage two: a file removed from its own layer, a base file cut short.
	runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot)
	if err := os.Remove(filepath.Join(st.LayerFS(own["two"]), "app", "two")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(st.LayerFS(baseDigest), "etc", "os-release"), 2); err != nil {
		t.Fatal(err)
	}
	out, _ = runFlatbed(t, 1, "verify", mpRepo, "--store-root", storeRoot)
	for _, want := range []string{"the layer was changed: files 0, recorded 1", "the layer was changed: bytes 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify did not report %q:\n%s", want, out)
		}
	}
	runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot, "--state-dir", state, "--repair")
	runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot)
	for p, want := range map[string]string{"app/two": "I am two\n", "etc/os-release": "ID=flatbed-e2e\n"} {
		if got, err := os.ReadFile(filepath.Join(st.PublicPath(two), p)); err != nil || string(got) != want {
			t.Errorf("after verify --repair %s/%s = %q, %v", two, p, got, err)
		}
	}
}
