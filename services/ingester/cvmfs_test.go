package ingester

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/store"
)

// recordingServer is a cvmfs_server stand-in that records its calls and, for an ingest of a
// tar, extracts it under root/BASE as a publisher's mount would show it.
func recordingServer(t *testing.T, root string) (bin, log string) {
	t.Helper()
	dir := t.TempDir()
	bin, log = filepath.Join(dir, "cvmfs_server"), filepath.Join(dir, "calls")
	script := `#!/bin/sh
echo "$*" >> '` + log + `'
if [ "$1" = ingest ]; then
  for b; do [ "$prev" = -b ] && base=$b; prev=$b; done
  mkdir -p '` + root + `'/"$base" && tar -x -f - -C '` + root + `'/"$base"
fi
`
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

// On CernVM-FS a layer is streamed into cvmfs_server ingest and described in a transaction;
// a layerfs published without its description (that transaction aborted by a SIGTERM) is
// not taken for a stored layer: the next delivery ingests it again.
func TestIngestIntoCVMFS(t *testing.T) {
	f := newFixture(t, nil)
	storeRoot := t.TempDir()
	job, in := f.request(t, "demo/hello:1.0", 0)
	repo := filepath.Join(storeRoot, job.CvmfsRepo)
	bin, log := recordingServer(t, repo)
	s, b := newService(t, storeRoot)
	s.CVMFS = (&cvmfs.Backends{Kinds: map[string]cvmfs.Kind{job.CvmfsRepo: cvmfs.Transactions}, StoreRoot: storeRoot, Bin: bin}).Publisher
	st := store.New(repo)
	hex := store.Hex(in.Layer.Digest)
	wantCalls := []string{"ingest --catalog -t - -b .layers/" + hex[:2] + "/" + hex + "/layerfs " + job.CvmfsRepo, "transaction " + job.CvmfsRepo, "publish " + job.CvmfsRepo}
	calls := func() []string {
		b, _ := os.ReadFile(log)
		os.Remove(log)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	if err := handle(t, s, in, 1); err != nil {
		t.Fatal(err)
	}
	if got := calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("calls %q, want %q", got, wantCalls)
	}
	m, err := layer.ReadMeta(st.LayerMeta(in.Layer.Digest))
	if err != nil || m.DiffID != in.Layer.DiffID || m.Whiteouts != layer.WhiteoutOCI {
		t.Errorf("layer.json %+v, %v", m, err)
	}
	if !slices.Contains(readOrigin(t, st, in.Layer.Digest), in.Image.ConfigDigest) {
		t.Error("origin.json does not name the image")
	}
	for _, dir := range []string{st.LayersDir(), filepath.Dir(st.LayerDir(in.Layer.Digest))} { // (the layerfs's is cvmfs_server's, for --catalog)
		if _, err := os.Stat(filepath.Join(dir, ".cvmfscatalog")); err != nil {
			t.Errorf("no nested catalog: %v", err)
		}
	}
	if got := b.Types(); !slices.Equal(got, []string{events.LayerIngestedType}) {
		t.Errorf("published %v", got)
	}

	// The description lost: ingested again.
	if err := os.Remove(filepath.Join(st.LayerMeta(in.Layer.Digest), layer.MetaFile)); err != nil {
		t.Fatal(err)
	}
	if err := handle(t, s, in, 1); err != nil {
		t.Fatal(err)
	}
	if got := calls(); !slices.Equal(got, wantCalls) {
		t.Errorf("a layer without its description: calls %q, want %q", got, wantCalls)
	}
	// Present and described: nothing to run.
	if err := handle(t, s, in, 1); err != nil {
		t.Fatal(err)
	}
	if got := calls(); !slices.Equal(got, []string{""}) {
		t.Errorf("a stored layer: calls %q, want none", got)
	}
}
