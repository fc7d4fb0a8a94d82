package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/relocate"
)

// relocate --rewrite writes a copy of a Kubernetes Deployment with the relocated image in
// place of the original, pinned to its digest, the rest unchanged; the original file is left
// alone. --rewrite without --rewrite-dir is a usage error.
func TestRelocateRewritesYAML(t *testing.T) {
	src := registrytest.Serve(t, nil)
	img, _ := random.Image(512, 1)
	digest := pushImage(t, src+"/team/app:1", img)
	dir := t.TempDir()
	manifest := filepath.Join(dir, "deploy.yaml")
	original := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app # the app\nspec:\n  template:\n    spec:\n      containers:\n" +
		"        - name: app\n          image: " + src + "/team/app:1\n        - name: other\n          image: \"" + src + "/team/other:1\"\n"
	if err := os.WriteFile(manifest, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := registrytest.Serve(t, nil)
	out := filepath.Join(dir, "relocated")
	mapping := filepath.Join(dir, "mapping.json")
	stdout := relocateRun(t, 0, "--repository-prefix", "http://"+dst+"/mirror", "--mapping", mapping, "--rewrite", manifest, "--rewrite-dir", out,
		"http://"+src+"/team/app:1")
	m, err := relocate.ReadMapping(mapping)
	if err != nil {
		t.Fatal(err)
	}
	relocated := m["http://"+src+"/team/app:1"]
	if !strings.HasSuffix(relocated, ":1@"+digest.String()) {
		t.Fatalf("mapping %v", m)
	}
	got, err := os.ReadFile(filepath.Join(out, "deploy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(original, "image: "+src+"/team/app:1\n", "image: "+relocated+"\n", 1)
	if string(got) != want {
		t.Errorf("rewritten copy:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(stdout, "(1 image(s) replaced)") {
		t.Errorf("stdout: %s", stdout)
	}
	if b, _ := os.ReadFile(manifest); string(b) != original {
		t.Error("the original file was changed")
	}
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"relocate", "--repository-prefix", dst + "/m", "--rewrite", manifest, "r.example/a:1"}, &so, &se); code != exitUsage ||
		!strings.Contains(se.String(), "--rewrite-dir") {
		t.Errorf("--rewrite without --rewrite-dir: exit %d, %s", code, se.String())
	}
}
