package lifecycle_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/store"
)

const multiName = "r.example/apps/multi:1"

// multiImage writes what the flattener leaves for a multi-arch image: each platform's flat
// tree, link under .multiarch and record under .metadata/.multiarch, then the variant public
// path and the index with its record. It returns each platform's config digest by directory.
func (f fixture) multiImage(name string, layers map[string]string) map[string]string {
	cfgs := map[string]string{}
	var recs []lifecycle.PlatformRecord
	for _, dir := range []string{"amd64", "arm64:v8"} {
		cfg := digest("config " + name + dir)
		cfgs[dir] = cfg
		flat := f.st.FlatDir(cfg)
		if err := os.MkdirAll(filepath.Join(flat, "etc"), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(flat, "etc", "arch"), []byte(dir), 0o644); err != nil {
			f.t.Fatal(err)
		}
		tally, _ := layer.Count(flat)
		link := path.Join(".multiarch", dir, name)
		if _, err := store.SymlinkAtomic(store.RelTarget(link, rel(f.st, flat)), f.st.MultiarchPath(dir, name)); err != nil {
			f.t.Fatal(err)
		}
		m := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfg +
			`","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + layers[dir] + `","size":1}]}`
		meta := f.st.MultiarchMetadataDir(dir, name)
		rec, _ := json.Marshal(lifecycle.Record{Image: "http://" + name, Flat: &tally})
		for file, b := range map[string][]byte{lifecycle.RecordFile: rec, lifecycle.ConfigFile: []byte("{}"), "manifest.json": []byte(m)} {
			if _, err := store.WriteFileAtomic(filepath.Join(meta, file), b, 0o644); err != nil {
				f.t.Fatal(err)
			}
		}
		h := sha256.Sum256([]byte(m))
		recs = append(recs, lifecycle.PlatformRecord{Platform: "linux/" + strings.ReplaceAll(dir, ":", "/"), Dir: dir,
			ManifestDigest: "sha256:" + hex.EncodeToString(h[:]), ConfigDigest: cfg})
	}
	for alias, target := range map[string]string{"x86_64": "amd64", "aarch64": "arm64:v8"} {
		if _, err := store.SymlinkAtomic(target, filepath.Join(f.st.MultiarchDir(), alias)); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := store.SymlinkAtomic(store.RelTarget(name, path.Join(".multiarch", "$(CVMFS_ARCH)", name)), f.st.PublicPath(name)); err != nil {
		f.t.Fatal(err)
	}
	index := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	h := sha256.Sum256(index)
	rec, _ := json.Marshal(lifecycle.Record{Image: "http://" + name, ManifestDigest: "sha256:" + hex.EncodeToString(h[:]),
		IndexDigest: "sha256:" + hex.EncodeToString(h[:]), Platforms: recs})
	if _, err := store.WriteFileAtomic(filepath.Join(f.st.MetadataDir(name), lifecycle.RecordFile), rec, 0o644); err != nil {
		f.t.Fatal(err)
	}
	if _, err := store.WriteFileAtomic(f.st.ManifestPath(name), index, 0o644); err != nil {
		f.t.Fatal(err)
	}
	return cfgs
}

// The flat trees and layers a multi-arch image reaches through .multiarch are never
// collected, and verify finds such an image whole; once deleted (links, platform records,
// public path, index), they are collected.
func TestMultiArchCollectDeleteVerify(t *testing.T) {
	f := newFixture(t)
	layers := map[string]string{"amd64": f.layer("amd64"), "arm64:v8": f.layer("arm64")}
	cfgs := f.multiImage(multiName, layers)
	f.image("r.example/apps/single:1", "single", f.layer("single"))
	ctx := context.Background()
	old := CollectNow(72 * time.Hour)

	images, err := lifecycle.Images(f.st)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range images {
		names = append(names, img.Name)
		if img.Name == multiName && len(img.Platforms) != 2 {
			t.Errorf("the multi-arch image lists %d platforms, want 2", len(img.Platforms))
		}
	}
	if !slices.Equal(names, []string{multiName, "r.example/apps/single:1"}) {
		t.Errorf("Images = %v: a platform's record is not an image of its own", names)
	}
	if ps, err := lifecycle.Verify(f.st); err != nil || len(ps) != 0 {
		t.Errorf("Verify of a whole store: %v, %v", ps, err)
	}
	c, err := lifecycle.Collect(ctx, f.st, old)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Removed) != 0 {
		t.Fatalf("collected %v, which a multi-arch image uses", c.Removed)
	}

	// A platform's link pointing elsewhere, and a platform's tree gone, are reported.
	if err := os.RemoveAll(f.st.FlatDir(cfgs["arm64:v8"])); err != nil {
		t.Fatal(err)
	}
	ps, err := lifecycle.Verify(f.st, multiName)
	if err != nil || len(ps) == 0 || !strings.Contains(ps[0].String(), "flat tree is missing") {
		t.Errorf("Verify with the arm64 tree gone: %v, %v", ps, err)
	}

	removed, err := lifecycle.Delete(f.st, multiName, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{multiName, ".metadata/" + multiName, ".multiarch/amd64/" + multiName, ".metadata/.multiarch/arm64:v8/" + multiName} {
		if !slices.Contains(removed, want) {
			t.Errorf("Delete removed %v, not %s", removed, want)
		}
	}
	for _, gone := range []string{f.st.PublicPath(multiName), f.st.MultiarchPath("amd64", multiName), f.st.MultiarchPath("arm64:v8", multiName),
		f.st.MultiarchMetadataDir("amd64", multiName), f.st.MetadataDir(multiName)} {
		if _, err := os.Lstat(gone); err == nil {
			t.Errorf("%s is still there after delete", gone)
		}
	}
	c, err = lifecycle.Collect(ctx, f.st, old)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(c.Removed, rel(f.st, f.st.FlatDir(cfgs["amd64"]))) || !slices.Contains(c.Removed, rel(f.st, f.st.LayerDir(layers["amd64"]))) {
		t.Errorf("after delete, collected %v: want the amd64 tree and layer", c.Removed)
	}
}

// A platform linked under .multiarch whose image never completed (another platform failed)
// keeps its tree: garbage collection never takes what a .multiarch link reaches.
func TestCollectKeepsLinkedPlatformTrees(t *testing.T) {
	f := newFixture(t)
	cfgs := f.multiImage(multiName, map[string]string{"amd64": f.layer("amd64"), "arm64:v8": f.layer("arm64")})
	// Only the links stay: no index, no platform record.
	for _, p := range []string{f.st.MetadataDir(multiName), f.st.MultiarchMetadataTop()} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	c, err := lifecycle.Collect(context.Background(), f.st, CollectNow(72*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range cfgs {
		if slices.Contains(c.Removed, rel(f.st, f.st.FlatDir(cfg))) || !f.st.HasFlat(cfg) {
			t.Errorf("collected %s, which a .multiarch link reaches", f.st.FlatDir(cfg))
		}
	}
}

// CollectNow is Collect's options for a collection d from now, past any grace.
func CollectNow(d time.Duration) lifecycle.CollectOptions {
	return lifecycle.CollectOptions{Grace: time.Hour, Now: later(d)}
}
