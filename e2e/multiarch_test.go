package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/multiarch"
	"flatbed.dev/pkg/store"
	"flatbed.dev/pkg/thin"
)

// writeMultiWishlist writes a wishlist asking for refs on host with thin images under
// thin/<repository>:<tag> of the same registry.
func writeMultiWishlist(t *testing.T, host string, refs ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nuser: e2e\ncvmfs_repo: '%s'\noutput_format: '$(scheme)://$(registry)/thin/$(repository):$(tag)'\ninput:\n", mpRepo)
	for _, r := range refs {
		fmt.Fprintf(&b, "  - 'http://%s/%s'\n", host, r)
	}
	p := filepath.Join(t.TempDir(), "wishlist.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cvmfsResolve follows the public path of name as a CVMFS client with CVMFS_ARCH=arch does:
// $(CVMFS_ARCH) in the variant symlink's target replaced by arch, then every link followed.
func cvmfsResolve(t *testing.T, st *store.Store, name, arch string) string {
	t.Helper()
	target, err := os.Readlink(st.PublicPath(name))
	if err != nil {
		t.Fatalf("the public path of %s: %v", name, err)
	}
	if !strings.Contains(target, "$(CVMFS_ARCH)") {
		t.Fatalf("the public path of %s links to %s, not through $(CVMFS_ARCH)", name, target)
	}
	p := filepath.Join(filepath.Dir(st.PublicPath(name)), strings.ReplaceAll(target, "$(CVMFS_ARCH)", arch))
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatalf("CVMFS_ARCH=%s: %s does not resolve: %v", arch, p, err)
	}
	return r
}

// Issue 10: with -m, a two-platform index (linux/amd64, linux/arm64/v8) yields a flat tree per
// platform with its own files and Singularity env, linked under .multiarch/<arch>[:<variant>];
// the public path is a variant symlink that lands in the right tree for each CVMFS_ARCH
// spelling; the thin image is a manifest list of per-platform thin images (skopeo inspect
// --raw); a re-run is "already converted" from one HEAD. Without -m only the host's platform
// is converted and the log names the one skipped. A platform that fails fails the wish naming
// it, and the public path stays absent.
func TestMultiArchConversion(t *testing.T) {
	reg := harness.StartRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	good, hostile := imagegen.MultiArch(false), imagegen.MultiArch(true)
	for _, n := range []imagegen.IndexNamed{good, hostile} {
		if err := imagegen.PushIndex(ctx, reg.Host, n); err != nil {
			t.Fatal(err)
		}
	}
	indexRaw, err := good.Index.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	indexDigest, _ := good.Index.Digest()
	pub := reg.Host + "/" + good.Ref()
	storeRoot := t.TempDir()
	st := store.New(filepath.Join(storeRoot, mpRepo))
	wl := writeMultiWishlist(t, reg.Host, good.Ref())
	args := []string{"convert", wl, "--store-root", storeRoot, "--state-dir", t.TempDir(), "-m"}
	out, _ := runFlatbed(t, 0, args...)
	if l := resultLine(t, out, "http://"+pub); strings.Contains(l, "already converted") {
		t.Fatalf("first run: %s", l)
	}

	t.Run("a flat tree per platform with its own files and env", func(t *testing.T) {
		for dir, arch := range map[string]string{"amd64": "amd64", "arm64:v8": "arm64"} {
			link := st.MultiarchPath(dir, pub)
			tree, err := filepath.EvalSymlinks(link)
			if err != nil {
				t.Fatalf(".multiarch/%s/%s: %v", dir, pub, err)
			}
			if !strings.HasPrefix(tree, filepath.Join(st.Root, ".flat")+"/") {
				t.Errorf("%s links to %s, not a flat tree", link, tree)
			}
			if got := readFile(t, filepath.Join(tree, "etc", "arch")); got != arch+"\n" {
				t.Errorf("%s: etc/arch = %q, want %s", dir, got, arch)
			}
			other := map[string]string{"amd64": "arm64", "arm64": "amd64"}[arch]
			if _, err := os.Stat(filepath.Join(tree, "bin", "only-"+other)); err == nil {
				t.Errorf("%s's tree holds bin/only-%s", dir, other)
			}
			env := readFile(t, filepath.Join(tree, ".singularity.d", "env", "90-environment.sh"))
			if !strings.Contains(env, "ARCH") || !strings.Contains(env, arch) || strings.Contains(env, other) {
				t.Errorf("%s: the Singularity env does not export ARCH=%s alone:\n%s", dir, arch, env)
			}
		}
	})

	t.Run("the public path resolves per CVMFS_ARCH", func(t *testing.T) {
		for arch, want := range map[string]string{"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"} {
			tree := cvmfsResolve(t, st, pub, arch)
			if got := readFile(t, filepath.Join(tree, "etc", "arch")); got != want+"\n" {
				t.Errorf("CVMFS_ARCH=%s lands in %s (etc/arch %q), want the %s tree", arch, tree, got, want)
			}
		}
		for alias, target := range map[string]string{"x86_64": "amd64", "aarch64": "arm64:v8", "arm64": "arm64:v8"} {
			if got, err := os.Readlink(filepath.Join(st.MultiarchDir(), alias)); err != nil || got != target {
				t.Errorf(".multiarch/%s -> %q (%v), want %s", alias, got, err, target)
			}
		}
		if got, err := os.ReadFile(st.ManifestPath(pub)); err != nil || !bytes.Equal(got, indexRaw) {
			t.Errorf("the recorded manifest is not the index %s (%v)", indexDigest, err)
		}
	})

	t.Run("the thin image is a manifest list of thin images", func(t *testing.T) {
		thinRef := reg.Host + "/thin/" + good.Ref()
		var list v1.IndexManifest
		if err := json.Unmarshal(harness.SkopeoInspectRaw(t, thinRef), &list); err != nil {
			t.Fatal(err)
		}
		if !list.MediaType.IsIndex() || len(list.Manifests) != 2 {
			t.Fatalf("skopeo inspect --raw %s: %s with %d entries, want a manifest list of 2", thinRef, list.MediaType, len(list.Manifests))
		}
		for i, p := range imagegen.MultiArchPlatforms {
			e := list.Manifests[i]
			if e.Platform == nil || e.Platform.OS != p.OS || e.Platform.Architecture != p.Architecture || e.Platform.Variant != p.Variant {
				t.Errorf("entry %d names platform %+v, want %+v", i, e.Platform, p)
			}
			ref, err := name.ParseReference(reg.Host+"/thin/"+good.Name+"@"+e.Digest.String(), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(ref)
			if err != nil {
				t.Fatal(err)
			}
			m, err := thin.Read(img)
			if err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
			src := good.Images[multiarch.String(p)]
			layers, _ := src.Layers()
			if len(m.Layers) != len(layers) {
				t.Fatalf("entry %d: thin.json lists %d layers, want %d", i, len(m.Layers), len(layers))
			}
			for j, l := range layers {
				if d, _ := l.Digest(); m.Layers[j].Digest != d.Hex {
					t.Errorf("entry %d: thin layer %d is %s, want %s", i, j, m.Layers[j].Digest, d.Hex)
				}
			}
		}
	})

	t.Run("a re-run is already converted from one HEAD", func(t *testing.T) {
		thinRef := reg.Host + "/thin/" + good.Ref()
		list := rawDigest(t, thinRef)
		seen := len(reg.RequestLog(t))
		out, _ := runFlatbed(t, 0, args...)
		if l := resultLine(t, out, "http://"+pub); !strings.Contains(l, "already converted") {
			t.Errorf("re-run: %s", l)
		}
		asked := sortRequests(reg.RequestLog(t)[seen:])
		if got := asked.manifests[good.Name]; len(got) != 1 || got[0] != "HEAD" {
			t.Errorf("re-run asked the manifest with %v, want one HEAD", got)
		}
		// The thin image of an image already converted is checked, and stays the list.
		if got := rawDigest(t, thinRef); got != list {
			t.Errorf("after the re-run the thin tag names %s, not the manifest list %s", got, list)
		}
	})

	t.Run("verify --repair converts a damaged platform again with -m", func(t *testing.T) {
		tree, err := filepath.EvalSymlinks(st.MultiarchPath("arm64:v8", pub))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(tree, "etc", "arch")); err != nil {
			t.Fatal(err)
		}
		out, _ := runFlatbed(t, 1, "verify", mpRepo, "--store-root", storeRoot)
		if !strings.Contains(out, "arm64:v8") {
			t.Errorf("verify does not name the damaged platform:\n%s", out)
		}
		runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot, "--repair", "--state-dir", t.TempDir())
		for arch, want := range map[string]string{"aarch64": "arm64", "x86_64": "amd64"} {
			if got := readFile(t, filepath.Join(cvmfsResolve(t, st, pub, arch), "etc", "arch")); got != want+"\n" {
				t.Errorf("after the repair CVMFS_ARCH=%s reads etc/arch %q, want %s", arch, got, want)
			}
		}
		runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot)
	})

	t.Run("verify, gc and delete-image know the platforms", func(t *testing.T) {
		var trees []string
		for _, dir := range []string{"amd64", "arm64:v8"} {
			tree, err := filepath.EvalSymlinks(st.MultiarchPath(dir, pub))
			if err != nil {
				t.Fatal(err)
			}
			trees = append(trees, tree)
		}
		runFlatbed(t, 0, "verify", mpRepo, "--store-root", storeRoot)
		out, _ := runFlatbed(t, 0, "gc", mpRepo, "--store-root", storeRoot, "--min-age", "-1s")
		for _, tree := range trees {
			if _, err := os.Stat(tree); err != nil {
				t.Errorf("gc removed %s, which .multiarch links to:\n%s", tree, out)
			}
		}
		runFlatbed(t, 0, "delete-image", mpRepo, "http://"+pub, "--store-root", storeRoot)
		for _, p := range []string{st.PublicPath(pub), st.MultiarchPath("amd64", pub), st.MultiarchPath("arm64:v8", pub), st.MetadataDir(pub)} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("%s is still there after delete-image", p)
			}
		}
		out, _ = runFlatbed(t, 0, "gc", mpRepo, "--store-root", storeRoot, "--min-age", "-1s")
		for _, tree := range trees {
			if _, err := os.Stat(tree); err == nil {
				t.Errorf("after delete-image, gc left %s:\n%s", tree, out)
			}
		}
	})

	t.Run("without -m only the host's platform", func(t *testing.T) {
		root := t.TempDir()
		st := store.New(filepath.Join(root, mpRepo))
		_, stderr := runFlatbed(t, 0, "convert", wl, "-i", "--store-root", root, "--state-dir", t.TempDir())
		host, skipped := "amd64", "linux/arm64/v8"
		if runtime.GOARCH == "arm64" {
			host, skipped = "arm64", "linux/amd64"
		}
		tree, err := filepath.EvalSymlinks(st.PublicPath(pub))
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(tree, "etc", "arch")); got != host+"\n" {
			t.Errorf("the public path lands in a tree of %q, want the host's %s", got, host)
		}
		if target, _ := os.Readlink(st.PublicPath(pub)); strings.Contains(target, "CVMFS_ARCH") {
			t.Errorf("without -m the public path is a variant symlink: %s", target)
		}
		if !strings.Contains(stderr, `"skipped":"`+skipped+`"`) && !strings.Contains(stderr, "skipped="+skipped) {
			t.Errorf("the log does not name the skipped platform %s:\n%s", skipped, lastLines(stderr, 30))
		}
	})

	t.Run("a failing platform fails the wish naming it", func(t *testing.T) {
		root := t.TempDir()
		st := store.New(filepath.Join(root, mpRepo))
		hostileName := reg.Host + "/" + hostile.Ref()
		out, _ := runFlatbed(t, 1, "convert", writeMultiWishlist(t, reg.Host, hostile.Ref()), "-m", "-i", "--store-root", root, "--state-dir", t.TempDir())
		l := lineFor(out, "FAILED", hostile.Ref())
		if l == "" || !strings.Contains(l, "platform linux/arm64/v8") {
			t.Errorf("the failure does not name the platform:\n%s", out)
		}
		if _, err := os.Lstat(st.PublicPath(hostileName)); err == nil {
			t.Error("the public path exists although a platform failed")
		}
		if _, err := os.Stat(st.ManifestPath(hostileName)); err == nil {
			t.Error("the index is recorded although a platform failed")
		}
		if _, err := os.Stat(filepath.Join(root, "etc", "x")); err == nil {
			t.Error("the hostile layer wrote outside the store")
		}
	})
}

// pushMultiArch pushes imagegen's well-formed two-platform index to the registry at host.
func pushMultiArch(t *testing.T, host string) imagegen.IndexNamed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	good := imagegen.MultiArch(false)
	if err := imagegen.PushIndex(ctx, host, good); err != nil {
		t.Fatal(err)
	}
	return good
}
