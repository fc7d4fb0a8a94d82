package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nats-io/nats.go"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/events"
	"flatbed.dev/pkg/store"
)

// deleteTag removes repo:tag's manifest from a docker-registry (storage.delete.enabled, as
// the harness starts it): a HEAD for its digest, then DELETE by digest, as `regctl manifest
// rm` or `skopeo delete` do. The tag is gone afterwards.
func deleteTag(t *testing.T, reg *harness.Registry, repo, tag string) {
	t.Helper()
	head, err := http.NewRequest(http.MethodHead, reg.URL()+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	head.Header.Set("Accept", string(types.DockerManifestSchema2)+", "+string(types.OCIManifestSchema1))
	resp, err := http.DefaultClient.Do(head)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	digest := resp.Header.Get("Docker-Content-Digest")
	if resp.StatusCode != http.StatusOK || digest == "" {
		t.Fatalf("HEAD %s:%s: %s, digest %q", repo, tag, resp.Status, digest)
	}
	del, _ := http.NewRequest(http.MethodDelete, reg.URL()+"/v2/"+repo+"/manifests/"+digest, nil)
	resp, err = http.DefaultClient.Do(del)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE %s@%s: %s", repo, digest, resp.Status)
	}
	if resp, err = http.DefaultClient.Do(head); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("after DELETE, HEAD %s:%s answers %v, %v", repo, tag, resp, err)
	}
	resp.Body.Close()
}

// prune-images against a real docker-registry: of three converted images sharing a base, the
// one whose tag was deleted from the registry is pruned (its names, podman entry and an
// image.deleted event, as with delete-image; its layers stay for gc), the others stay; a dry
// run changes nothing; with the registry stopped nothing is removed, the registry is asked
// about one image only, and the command exits 1 naming it; with --wishlist an image no input
// names any more goes without asking the registry.
func TestPruneImagesRemovesWhatTheRegistryNoLongerHas(t *testing.T) {
	reg := harness.StartRegistry(t)
	refs, own := imagesOnABase(t, reg.Host, "one", "two", "three")
	storeRoot, state := t.TempDir(), t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	runFlatbed(t, 0, "convert", writeRawWishlist(t, reg.Host, refs), "--store-root", storeRoot, "--state-dir", state, "-i")
	st := store.New(filepath.Join(storeRoot, mpRepo))
	name := func(n string) string { return reg.Host + "/apps/" + n + ":v1" }
	reads := func(n string) bool {
		got, err := os.ReadFile(filepath.Join(st.PublicPath(name(n)), "app", n))
		return err == nil && string(got) == "I am "+n+"\n"
	}

	// Nothing gone upstream: nothing pruned.
	out, _ := runFlatbed(t, 0, "prune-images", mpRepo, "--store-root", storeRoot, "--state-dir", state)
	if !strings.Contains(out, "pruned 0 of 3 images: 3 still in their registry, 0 not decided") {
		t.Errorf("prune-images with every tag upstream:\n%s", out)
	}

	deleteTag(t, reg, "apps/two", "v1")
	before := fileList(t, storeRoot)
	out, _ = runFlatbed(t, 0, "prune-images", mpRepo, "--store-root", storeRoot, "--state-dir", state, "--dry-run")
	if !strings.Contains(out, "would remove "+name("two")+"\n") || strings.Contains(out, name("one")) || strings.Contains(out, name("three")) ||
		!strings.Contains(out, "would prune 1 of 3 images: 2 still in their registry, 0 not decided") {
		t.Errorf("prune-images --dry-run:\n%s", out)
	}
	if after := fileList(t, storeRoot); after != before {
		t.Errorf("the dry run changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	url, _ := startNATSServerProcess(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(events.Subject(events.ImageDeletedType))
	if err != nil {
		t.Fatal(err)
	}
	out, _ = runFlatbed(t, 0, "prune-images", mpRepo, "--store-root", storeRoot, "--nats", url)
	for _, want := range []string{"gone " + name("two") + ": " + reg.Host + " no longer has http://" + name("two") + "\n", "removed " + name("two") + "\n", "removed .metadata/" + name("two") + "\n", "removed podmanStore entry " + name("two") + "\n",
		"pruned 1 of 3 images: 2 still in their registry, 0 not decided"} {
		if !strings.Contains(out, want) {
			t.Errorf("prune-images does not say %q:\n%s", strings.TrimSpace(want), out)
		}
	}
	if _, err := os.Lstat(st.PublicPath(name("two"))); err == nil {
		t.Error("the pruned image's public path is still there")
	}
	if !reads("one") || !reads("three") {
		t.Error("an image still upstream lost its files")
	}
	if !st.HasLayer(own["two"]) {
		t.Error("prune-images removed a layer: only garbage-collection may")
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no image.deleted event: %v", err)
	}
	var del events.ImageDeleted
	checkLifecycleMsg(t, m, events.ImageDeletedType, &del)
	if del.Name != name("two") || del.CvmfsRepo != mpRepo || !del.PodmanEntry {
		t.Errorf("image.deleted %+v", del)
	}
	if m, err := sub.NextMsg(time.Second); err == nil {
		t.Errorf("a second image.deleted: %s", m.Data)
	}

	// The registry stopped: nothing removed, exit 1 naming it.
	reg.Stop()
	before = fileList(t, storeRoot)
	start := time.Now()
	out, errOut := runFlatbed(t, 1, "prune-images", mpRepo, "--store-root", storeRoot, "--state-dir", state, "--registry-timeout", "2s")
	if strings.Contains(out, "removed") || !strings.Contains(out, "failed "+name("one")) || !strings.Contains(out, "failed "+name("three")) ||
		!strings.Contains(out, "not asked: registry "+reg.Host+" did not answer") || !strings.Contains(errOut, "registry "+reg.Host) {
		t.Errorf("prune-images with the registry stopped:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	if after := fileList(t, storeRoot); after != before {
		t.Errorf("prune-images with the registry stopped changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	t.Logf("with the registry stopped prune-images gave up after %s:\n%s%s", time.Since(start).Round(time.Millisecond), out, lastLines(errOut, 3))

	// --wishlist: an image the wishlist no longer names goes without asking the (stopped)
	// registry; the one it names is asked about, and kept. A wishlist for another repository
	// is refused.
	wl := writeRawWishlist(t, reg.Host, []string{"apps/one:v1"})
	if err := os.MkdirAll(filepath.Join(storeRoot, "other.repo"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, errOut = runFlatbed(t, 2, "prune-images", "other.repo", "--store-root", storeRoot, "--wishlist", wl)
	if !strings.Contains(errOut, "not \"other.repo\"") {
		t.Errorf("a wishlist for another repository:\n%s", errOut)
	}
	out, _ = runFlatbed(t, 1, "prune-images", mpRepo, "--store-root", storeRoot, "--state-dir", state, "--registry-timeout", "1s", "--wishlist", wl)
	if !strings.Contains(out, "unwished "+name("three")+": no input of the wishlist names it\n") || !strings.Contains(out, "removed "+name("three")+"\n") ||
		!strings.Contains(out, "failed "+name("one")) || strings.Contains(out, "removed "+name("one")) {
		t.Errorf("prune-images --wishlist:\n%s", out)
	}
	if !reads("one") {
		t.Error("the image the wishlist still names lost its files")
	}
	if _, err := os.Lstat(st.PublicPath(name("three"))); err == nil {
		t.Error("the image the wishlist no longer names is still there")
	}
}

// imagesOnABase pushes apps/<name>:v1 for each name: a shared base layer (etc/os-release) and
// a layer of its own holding app/<name> ("I am <name>\n"). It returns the references and
// each image's own layer digest.
func imagesOnABase(t testing.TB, host string, names ...string) (refs []string, own map[string]string) {
	t.Helper()
	base := tarOf(t, map[string]string{"etc/os-release": "ID=flatbed-e2e\n"})
	gzBase := gzipOf(t, base)
	own = map[string]string{}
	for _, name := range names {
		top := tarOf(t, map[string]string{"app/" + name: "I am " + name + "\n"})
		gzTop := gzipOf(t, top)
		own[name] = sha256Of(gzTop)
		cfg := configOfEnv(t, []string{sha256Of(base), sha256Of(top)}, []string{"WHO=" + name})
		rawImage(t, host, "apps/"+name+":v1", cfg, []rawLayer{
			{rawBlob{gzBase, types.DockerLayer}, int64(len(gzBase))}, {rawBlob{gzTop, types.DockerLayer}, int64(len(gzTop))}})
		refs = append(refs, "apps/"+name+":v1")
	}
	return refs, own
}

// fileList lists every path under root with its type, sorted, one a line.
func fileList(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(root, p)
		b.WriteString(r + " " + fi.Mode().Type().String() + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
