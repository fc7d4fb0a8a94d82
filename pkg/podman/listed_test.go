package podman_test

import (
	"os"
	"path/filepath"
	"testing"

	"flatbed.dev/pkg/podman"
)

// Listed says yes exactly when Add would change nothing: after Add; not before it, not once
// the tag moved to another image, not with another manifest, not with the layer's link gone.
func TestListedIsWhatAddLeaves(t *testing.T) {
	repo := t.TempDir()
	a := newImage(t, repo, "r.example/x:latest", "V=1")
	b := newImage(t, repo, "r.example/x:latest", "V=2")
	if podman.Listed(repo, a.Image) {
		t.Fatal("listed in an empty store")
	}
	if err := podman.Add(repo, a.Image); err != nil {
		t.Fatal(err)
	}
	if !podman.Listed(repo, a.Image) {
		t.Fatal("not listed right after Add")
	}
	other := a.Image
	other.Manifest = append([]byte(nil), a.Manifest...)
	other.Manifest = append(other.Manifest, ' ')
	if podman.Listed(repo, other) {
		t.Error("listed with another manifest")
	}
	if err := podman.Add(repo, b.Image); err != nil {
		t.Fatal(err)
	}
	if podman.Listed(repo, a.Image) || !podman.Listed(repo, b.Image) {
		t.Error("the tag moved to b, and Listed does not say so")
	}
	dirs, err := filepath.Glob(filepath.Join(repo, podman.Dir, "overlay", "*", "diff"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no layer links in the store: %v", err)
	}
	for _, d := range dirs {
		if err := os.Remove(d); err != nil {
			t.Fatal(err)
		}
	}
	if podman.Listed(repo, b.Image) {
		t.Error("listed with its layer's link to the flat tree gone")
	}
}
