package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/store"
)

// TestHostileImagesFailAloneAndWriteNothingOutside converts the hostile images next to the
// demo images with the real binary and registry. The store root is <tmp>/root/store inside a
// sentinel tree (<tmp>/root/etc/passwd and friends, where the hostile layers' "../" names,
// symlinks and hard links aim). Each hostile image must fail with its reason, the demo
// images convert, no file outside the store changes, and no trace of a hostile layer stays
// in the store (no layer dir, no .tmp- dir, no planted payload).
func TestHostileImagesFailAloneAndWriteNothingOutside(t *testing.T) {
	reg := harness.StartRegistry(t)
	// The bomb expands to 16 MiB; --max-layer-bytes below is half that.
	hostile := append(imagegen.Hostile(), imagegen.HostileBomb())
	demo := imagegen.Demo()
	if err := imagegen.Push(context.Background(), reg.Host, append(slices.Clone(hostile), demo...)); err != nil {
		t.Fatal(err)
	}
	wl := mpWriteWishlist(t, reg.Host, append(slices.Clone(hostile), demo...))

	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	storeRoot := filepath.Join(root, "store")
	if err := os.MkdirAll(storeRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	// imagegen.HostileUp from a layer being unpacked reaches root: every target is in here.
	for p, body := range map[string]string{
		"etc/passwd":      "root:x:0:0:root:/root:/bin/sh\n",
		"etc/shadow":      "root:*:19000:0:99999:7:::\n",
		"etc/x/keep":      "a directory where a file is aimed at\n",
		"outside":         "sentinel\n",
		"d/file":          "sentinel\n",
		"store.txt":       "next to the store\n",
		"a/a/a/a/a/a/a/f": "deep\n",
	} {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := treeState(t, tmp, storeRoot)

	args := []string{"convert", wl, "--store-root", storeRoot, "--state-dir", t.TempDir(), "-i", "--max-attempts", "1", "--max-layer-bytes", "8388608"}
	out, stderr := runFlatbed(t, 1, args...)

	lines := strings.Split(out, "\n")
	for _, img := range hostile {
		ref := "http://" + reg.Host + "/" + img.Ref()
		line := ""
		for _, l := range lines {
			if strings.HasPrefix(l, "FAILED") && strings.Contains(l, ref+":") {
				line = l
			}
		}
		switch reason := imagegen.HostileReason(img.Ref()); {
		case line == "":
			t.Errorf("%s did not fail", img.Ref())
		case !strings.Contains(line, reason):
			t.Errorf("%s failed for another reason than %q:\n%s", img.Ref(), reason, line)
		}
	}
	st := store.New(filepath.Join(storeRoot, mpRepo))
	for _, img := range demo {
		if _, err := os.Lstat(st.PublicPath(reg.Host + "/" + img.Ref())); err != nil {
			t.Errorf("%s was not converted next to the hostile images: %v", img.Ref(), err)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr (tail):\n%s", out, lastLines(stderr, 40))
	}

	if d := diffStates(before, treeState(t, tmp, storeRoot)); len(d) > 0 {
		t.Errorf("files outside the store changed:\n%s", strings.Join(d, "\n"))
	}
	for _, img := range hostile {
		layers, err := img.Image.Layers()
		if err != nil {
			t.Fatal(err)
		}
		dg, _ := layers[len(layers)-1].Digest()
		if _, err := os.Lstat(st.LayerDir(dg.String())); err == nil {
			t.Errorf("%s: hostile layer %s is in the store", img.Ref(), dg)
		}
	}
	// Nothing half-done and nothing planted anywhere, the store included.
	err := filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temporary directory left: %s", p)
		}
		if d.Type().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(imagegen.HostilePayload)) {
				t.Errorf("hostile payload planted at %s", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type pathState struct {
	mode         fs.FileMode
	size         int64
	mtime, ctime int64
	nlink        uint64
	sum          [32]byte
	link         string
}

// treeState records every path below root except the subtree skip.
func treeState(t *testing.T, root, skip string) map[string]pathState {
	t.Helper()
	out := map[string]pathState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		s := pathState{mode: fi.Mode(), size: fi.Size(), mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), nlink: uint64(st.Nlink)}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s.sum = sha256.Sum256(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			s.link, _ = os.Readlink(p)
		}
		out[p] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffStates(before, after map[string]pathState) []string {
	var out []string
	for p, b := range before {
		switch a, ok := after[p]; {
		case !ok:
			out = append(out, "removed: "+p)
		case a != b:
			out = append(out, fmt.Sprintf("changed: %s %+v -> %+v", p, b, a))
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			out = append(out, "created: "+p)
		}
	}
	slices.Sort(out)
	return out
}
