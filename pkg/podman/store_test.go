package podman_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/podman"
	"flatbed.dev/pkg/store"
)

type testImage struct {
	podman.Image
	env string
}

// newImage makes a flat tree in repo and the image description podman needs.
func newImage(t *testing.T, repo, name, env string) testImage {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf.Config.Env = []string{env}
	cf.Architecture, cf.OS = "amd64", "linux"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	cfgName, _ := img.ConfigName()
	digest, _ := img.Digest()
	manifest, _ := img.RawManifest()
	config, _ := img.RawConfigFile()
	st := store.New(repo)
	flat := st.FlatDir(cfgName.String())
	if err := os.MkdirAll(filepath.Join(flat, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(flat, "etc", "hello"), []byte(name), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(repo, flat)
	return testImage{podman.Image{Name: name, ConfigDigest: cfgName.String(), ManifestDigest: digest.String(), Manifest: manifest, Config: config, FlatDir: rel}, env}
}

// runPodman runs podman with the store as its only additional image store.
func runPodman(t *testing.T, repo string, args ...string) []byte {
	t.Helper()
	tmp := t.TempDir()
	// Podman's overlay driver mounts its graph root over itself; undo it before the cleanup.
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(tmp, "graph", "overlay"), unix.MNT_DETACH) })
	full := append([]string{"--root", filepath.Join(tmp, "graph"), "--runroot", filepath.Join(tmp, "run"), "--storage-driver", "overlay",
		"--storage-opt", "additionalimagestore=" + filepath.Join(repo, podman.Dir)}, args...)
	out, err := exec.Command("podman", full...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func requirePodman(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("podman is not installed: scripts/install-test-deps.sh installs it")
		}
		t.Skip("podman is not installed (apt-get install podman)")
	}
}

// Podman, given the store as an additional image store, lists the images, shows their
// config, and forgets an image once its last name is removed.
func TestPodmanListsAndInspects(t *testing.T) {
	requirePodman(t)
	repo := t.TempDir()
	a := newImage(t, repo, "registry.example.org/demo/hello:1.0", "GREETING=hello")
	b := newImage(t, repo, "registry.example.org/demo/other:2.0", "GREETING=other")
	for _, img := range []testImage{a, b, a} { // adding again is harmless
		if err := podman.Add(repo, img.Image); err != nil {
			t.Fatal(err)
		}
	}
	var listed []struct {
		ID    string   `json:"Id"`
		Names []string `json:"Names"`
	}
	if err := json.Unmarshal(runPodman(t, repo, "images", "--format", "json"), &listed); err != nil {
		t.Fatal(err)
	}
	ids := map[string][]string{}
	for _, l := range listed {
		ids[l.ID] = l.Names
	}
	for _, img := range []testImage{a, b} {
		names, ok := ids[store.Hex(img.ConfigDigest)]
		if !ok || !slices.Contains(names, img.Name) {
			t.Errorf("podman images does not list %s (%s): %v", img.Name, img.ConfigDigest, listed)
		}
		var inspect []struct {
			Config struct{ Env []string }
			Digest string
		}
		if err := json.Unmarshal(runPodman(t, repo, "image", "inspect", img.Name), &inspect); err != nil {
			t.Fatal(err)
		}
		if len(inspect) != 1 || !slices.Contains(inspect[0].Config.Env, img.env) || inspect[0].Digest != img.ManifestDigest {
			t.Errorf("podman image inspect %s = %+v, want Env %s and digest %s", img.Name, inspect, img.env, img.ManifestDigest)
		}
	}
	if err := podman.Remove(repo, a.Name); err != nil {
		t.Fatal(err)
	}
	out := runPodman(t, repo, "images", "--format", "{{.Repository}}:{{.Tag}}")
	if strings.Contains(string(out), "demo/hello") || !strings.Contains(string(out), "demo/other") {
		t.Errorf("after removing %s, podman lists:\n%s", a.Name, out)
	}
	if _, err := os.Lstat(filepath.Join(repo, podman.Dir, "overlay-images", store.Hex(a.ConfigDigest))); err == nil {
		t.Error("the removed image's metadata is still there")
	}
	// The flat tree is the store's, not podman's.
	if _, err := os.Stat(filepath.Join(repo, a.FlatDir, "etc", "hello")); err != nil {
		t.Errorf("removing the podman entry touched the flat tree: %v", err)
	}
}

// A tag that moves to another image leaves the old image without that name.
func TestNameMovesWithTheTag(t *testing.T) {
	repo := t.TempDir()
	a := newImage(t, repo, "r.example/x:latest", "V=1")
	b := newImage(t, repo, "r.example/x:latest", "V=2")
	for _, img := range []testImage{a, b} {
		if err := podman.Add(repo, img.Image); err != nil {
			t.Fatal(err)
		}
	}
	names, err := podman.Names(repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "r.example/x:latest" {
		t.Errorf("names %v, want the tag once", names)
	}
	// b has the name; a has none and is gone once the tag is removed from the store.
	if err := podman.Remove(repo, "r.example/x:latest"); err != nil {
		t.Fatal(err)
	}
	if names, _ := podman.Names(repo); len(names) != 0 {
		t.Errorf("names %v after removing the tag", names)
	}
}

func TestFlatDirMustStayInTheRepository(t *testing.T) {
	repo := t.TempDir()
	img := newImage(t, repo, "r.example/x:1", "V=1")
	img.FlatDir = "../../etc"
	if err := podman.Add(repo, img.Image); err == nil {
		t.Error("a flat tree outside the repository was accepted")
	}
}
