package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/store"
)

// scanAgainstExtract extracts blob into dir (WhiteoutOCI, as a cvmfs layer keeps its
// markers) and scans it; where Scan predicts a tally it must be exactly what Count gives for
// the extraction. It returns whether Scan predicted one (false too when Extract refused the
// layer).
func scanAgainstExtract(t *testing.T, blob []byte, dir string, opts Options) (predicted bool) {
	t.Helper()
	want := Want{Digest: sha(blob), Size: int64(len(blob))}
	opts.Whiteouts = WhiteoutOCI
	xm, err := Extract(context.Background(), bytes.NewReader(blob), dir, want, opts)
	if err != nil {
		return false // refused: nothing is recorded either way
	}
	tr, done := Scan(context.Background(), bytes.NewReader(blob), want, opts)
	if _, err := io.Copy(io.Discard, tr); err != nil {
		t.Fatalf("Scan refused a layer Extract took: %v", err)
	}
	sm, err := done()
	if err != nil {
		t.Fatalf("Scan refused a layer Extract took: %v", err)
	}
	if xm.Tally == nil {
		t.Fatal("Extract recorded no tally")
	}
	if sm.Tally == nil {
		return false
	}
	if *sm.Tally != *xm.Tally {
		t.Errorf("Scan's tally %+v, Count of the extraction %+v (%s)", *sm.Tally, *xm.Tally, xm.Tally.Diff(*sm.Tally))
	}
	return true
}

// Over the hostile corpus, Scan's tally is Count's of the same layer extracted, or none.
func TestScanTallyHostileCorpus(t *testing.T) {
	top := t.TempDir()
	predicted := 0
	corpus := hostileCorpus(t, top)
	for _, c := range corpus {
		t.Run(c.name, func(t *testing.T) {
			_, dir := sentinelTree(t, top)
			defer func() {
				if err := store.RemoveAll(top); err != nil {
					t.Fatal(err)
				}
			}()
			blob := c.blob
			if !bytes.HasPrefix(blob, magicGzip) {
				blob = compress(t, "gzip", blob)
			}
			if scanAgainstExtract(t, blob, dir, c.opts) {
				predicted++
			}
		})
	}
	t.Logf("%d of %d hostile layers with a predicted tally", predicted, len(corpus))
	if predicted < 3 {
		t.Errorf("only %d hostile layers had a tally predicted: the comparison checked next to nothing", predicted)
	}
}

// Over every layer of the generated images (demo, corpus: whiteouts, replacements, hard
// links, special files), Scan's tally is Count's of the layer extracted, or none; the
// ordinary layers all get one.
func TestScanTallyImagegen(t *testing.T) {
	imgs := append(imagegen.Demo(), imagegen.Corpus()...)
	total, predicted := 0, 0
	for _, n := range imgs {
		layers, err := n.Image.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			blob, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			_, dir := layerDir(t)
			total++
			ok := false
			t.Run(filepath.Join(n.Ref(), "layer", string(rune('0'+i))), func(t *testing.T) {
				ok = scanAgainstExtract(t, blob, dir, Options{})
			})
			if ok {
				predicted++
			}
			if !ok && n.Name == "demo/hello" {
				t.Errorf("%s layer %d: no tally predicted for an ordinary layer", n.Ref(), i)
			}
		}
	}
	t.Logf("%d of %d generated layers with a predicted tally", predicted, total)
	if predicted < total/2 {
		t.Errorf("only %d of %d generated layers had a tally predicted", predicted, total)
	}
}

// The corners where the unpacker decides give no tally (presence is checked, never a false
// drift); the certain ones give Count's.
func TestScanTallyCorners(t *testing.T) {
	dev := func(typ byte, name string) ent {
		return ent{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: testTime}}
	}
	for name, tc := range map[string]struct {
		ents    []ent
		unknown bool
	}{
		"files, dirs, links":      {ents: []ent{dirEnt("etc/", 0o755), file("etc/a", "abc", 0o644), file("usr/lib/x", "xy", 0o644), linkEnt("usr/lib/y", "usr/lib/x"), symlinkEnt("bin", "usr/bin")}},
		"whiteouts kept as files": {ents: []ent{file("usr/.wh.gone", "", 0o644), file("opt/.wh..wh..opq", "", 0o644), file("opt/new", "n", 0o644)}},
		"directory named twice":   {ents: []ent{file("d/f", "1", 0o644), dirEnt("d/", 0o755), dirEnt("d/", 0o700)}},
		"hard link to a symlink":  {ents: []ent{symlinkEnt("s", "t"), linkEnt("s2", "s")}},
		"file replaced":           {ents: []ent{file("a", "long content", 0o644), file("a", "b", 0o644)}, unknown: true},
		"file replaced by a dir":  {ents: []ent{file("a", "x", 0o644), file("a/b", "y", 0o644)}, unknown: true},
		"link to a lower layer":   {ents: []ent{linkEnt("x", "bin/old")}, unknown: true},
		"device":                  {ents: []ent{dev(tar.TypeChar, "dev/null")}, unknown: true},
		"fifo":                    {ents: []ent{dev(tar.TypeFifo, "run/p")}, unknown: true},
		"aufs bookkeeping":        {ents: []ent{file(".wh..wh.plnk/1", "x", 0o644)}, unknown: true},
		"own catalog marker":      {ents: []ent{file(CatalogMarker, "", 0o644)}, unknown: true},
		"whiteout with content":   {ents: []ent{file(".wh.x", "data", 0o644)}, unknown: true},
	} {
		t.Run(name, func(t *testing.T) {
			raw := mkTar(t, tc.ents...)
			blob := compress(t, "gzip", raw)
			_, dir := layerDir(t)
			got := scanAgainstExtract(t, blob, dir, Options{})
			if got == tc.unknown {
				t.Errorf("tally predicted: %v, want %v", got, !tc.unknown)
			}
		})
	}
}
