package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/store"
)

// TestBadImagesDoNotStopOthers wishes a missing tag and a wildcard that matches no tag next
// to good images: the good ones convert, the bad ones fail with a reason naming them, the
// exit status says so, and ignoreErrors turns those failures into a clean exit.
func TestBadImagesDoNotStopOthers(t *testing.T) {
	reg := harness.StartRegistry(t)
	demo := imagegen.Demo()
	if err := imagegen.Push(context.Background(), reg.Host, demo); err != nil {
		t.Fatal(err)
	}
	missing := "http://" + reg.Host + "/demo/hello:no-such-tag"
	wildcard := "http://" + reg.Host + "/demo/hello:9.*"
	wl := mpWriteWishlist(t, reg.Host, demo)
	b, _ := os.ReadFile(wl)
	content := string(b) + "  - '" + missing + "'\n  - '" + wildcard + "'\n"
	if err := os.WriteFile(wl, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	storeRoot := t.TempDir()
	args := []string{"convert", wl, "--store-root", storeRoot, "--state-dir", t.TempDir(), "-i"}
	out, _ := runFlatbed(t, 1, args...)
	for _, want := range []string{"FAILED            " + missing, "FAILED            " + wildcard, "no tag of http://" + reg.Host + "/demo/hello matches 9.*"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	st := store.New(filepath.Join(storeRoot, mpRepo))
	for _, img := range demo {
		if _, err := os.Lstat(st.PublicPath(reg.Host + "/" + img.Ref())); err != nil {
			t.Errorf("%s was not converted next to the bad images: %v", img.Ref(), err)
		}
	}

	// The same failures listed in ignoreErrors: exit 0, and the good images are already there.
	content += "ignoreErrors:\n  - 'http://" + reg.Host + "/demo/hello:no-such-*'\n  - 'http://" + reg.Host + "/demo/hello:9.[*]'\n"
	if err := os.WriteFile(wl, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ = runFlatbed(t, 0, args...)
	if strings.Count(out, "(ignored: matches ignoreErrors)") != 2 || strings.Count(out, "already converted") != len(demo) {
		t.Errorf("second run output:\n%s", out)
	}
}

// TestWishlistErrorsUseDUCCExitCodes checks the exit statuses DUCC users script against.
func TestWishlistErrorsUseDUCCExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 2\ncvmfs_repo: x\ninput: ['https://r.example/a:1']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr := runFlatbed(t, 103, "convert", bad, "--store-root", dir, "--state-dir", dir)
	if !strings.Contains(stderr, "version") {
		t.Errorf("parse error does not name the field: %s", stderr)
	}
	runFlatbed(t, 102, "convert", filepath.Join(dir, "missing.yaml"), "--store-root", dir, "--state-dir", dir)
	ok := filepath.Join(dir, "ok.yaml")
	if err := os.WriteFile(ok, []byte("version: 1\nuser: u\ncvmfs_repo: 'not-there.example.org'\ninput: ['http://127.0.0.1:1/a:1']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runFlatbed(t, 104, "convert", ok, "--store-root", "/cvmfs", "--state-dir", dir)
}
