package ingester

import (
	"os"
	"path/filepath"
	"testing"

	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/store"
)

// A layer streamed into CernVM-FS records the tally of what its tar unpacks to, where the
// dir backend records Count's, so verify and the resolver's re-run check compare its files
// too: the stand-in's unpacking (GNU tar, as cvmfs_server ingest would show it) matches it,
// and a file removed there no longer does.
func TestIngestIntoCVMFSRecordsTally(t *testing.T) {
	f := newFixture(t, nil)
	storeRoot := t.TempDir()
	for _, ref := range []string{"demo/hello:1.0", "demo/hello:2.0", "demo/tools:latest"} {
		for i := range 2 {
			job, in := f.request(t, ref, i)
			repo := filepath.Join(storeRoot, job.CvmfsRepo)
			bin, _ := recordingServer(t, repo)
			s, _ := newService(t, storeRoot)
			s.CVMFS = (&cvmfs.Backends{Kinds: map[string]cvmfs.Kind{job.CvmfsRepo: cvmfs.Transactions}, StoreRoot: storeRoot, Bin: bin}).Publisher
			if err := handle(t, s, in, 1); err != nil {
				t.Fatal(err)
			}
			st := store.New(repo)
			m, err := layer.ReadMeta(st.LayerMeta(in.Layer.Digest))
			if err != nil {
				t.Fatal(err)
			}
			if m.Tally == nil {
				t.Fatalf("%s layer %d: no tally recorded for a layer streamed into CernVM-FS", ref, i)
			}
			got, err := layer.Count(st.LayerFS(in.Layer.Digest))
			if err != nil {
				t.Fatal(err)
			}
			if d := m.Tally.Diff(got); d != "" {
				t.Errorf("%s layer %d: the unpacked layer differs from its recorded tally: %s", ref, i, d)
			}
		}
	}
	// Damage one: a file removed is drift.
	job, in := f.request(t, "demo/hello:1.0", 0)
	st := store.New(filepath.Join(storeRoot, job.CvmfsRepo))
	if err := os.Remove(filepath.Join(st.LayerFS(in.Layer.Digest), "etc/motd")); err != nil {
		t.Fatal(err)
	}
	m, _ := layer.ReadMeta(st.LayerMeta(in.Layer.Digest))
	got, err := layer.Count(st.LayerFS(in.Layer.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if m.Tally.Diff(got) == "" {
		t.Error("a file removed from a CernVM-FS layer is not drift against its tally")
	}
}
