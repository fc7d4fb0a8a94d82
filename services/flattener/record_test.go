package flattener

import (
	"strings"
	"testing"

	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/lifecycle"
)

// The flattener records the image as wished and what its flat tree holds, so verify can tell
// when the tree was damaged and verify --repair knows what to convert again, and the digests
// the resolver compares a HEAD with.
func TestFlattenRecordsTheTree(t *testing.T) {
	x := newSetup(t, "demo/hello:1.0", "registry.example/demo/hello:1.0")
	x.img.IndexDigest, x.img.Platform = "sha256:"+strings.Repeat("e", 64), "linux/amd64" // picked from an index
	x.ingestAll(t)
	if err := x.handle(t, len(x.desc.Layers)-1, 1); err != nil {
		t.Fatal(err)
	}
	rec, err := lifecycle.ReadRecord(x.st, x.img.Name)
	if err != nil || rec == nil {
		t.Fatalf("no record: %v", err)
	}
	got, err := layer.Count(x.st.FlatDir(x.img.ConfigDigest))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Image != x.job.Image || rec.Flat == nil || *rec.Flat != got || got.Files == 0 {
		t.Errorf("record %+v (flat %+v), want image %s and flat %+v", rec, rec.Flat, x.job.Image, got)
	}
	if rec.ManifestDigest != x.img.Digest || rec.IndexDigest != x.img.IndexDigest {
		t.Errorf("record names manifest %q index %q, want %q %q", rec.ManifestDigest, rec.IndexDigest, x.img.Digest, x.img.IndexDigest)
	}
	if ps, err := lifecycle.Verify(x.st); err != nil || len(ps) != 0 {
		t.Errorf("a freshly flattened store does not verify: %v %v", ps, err)
	}
}
