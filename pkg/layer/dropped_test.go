package layer

import (
	"archive/tar"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func devEnt(typ byte, name string, major, minor int64) ent {
	return ent{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o600, Devmajor: major, Devminor: minor, ModTime: testTime}}
}

// A device node not kept is listed in Meta.Dropped, for the flattener to remove the lower
// layers' entry of that path; what this layer had there goes at once, and a later entry of
// the same name (or below it) wins over the drop.
func TestDroppedDevices(t *testing.T) {
	dir, m := mustExtract(t, WhiteoutOCI,
		file("dev/sda", "own earlier file", 0o644),
		devEnt(tar.TypeBlock, "dev/sda", 8, 0),
		devEnt(tar.TypeChar, "mem", 1, 1),
		linkEnt("memlink", "mem"),
		devEnt(tar.TypeBlock, "again", 8, 1),
		file("again", "a file after all", 0o644),
		devEnt(tar.TypeBlock, "p", 8, 2),
		file("p/child", "c", 0o644),
		devEnt(tar.TypeFifo, "fifo", 0, 0),
	)
	if got, want := m.Dropped, []string{"dev/sda", "mem", "memlink"}; !slices.Equal(got, want) {
		t.Errorf("dropped = %q, want %q", got, want)
	}
	if got, want := tree(t, dir), []string{"again", "dev", "fifo", "p", "p/child"}; !slices.Equal(got, want) {
		t.Errorf("tree = %v, want %v", got, want)
	}
	if len(m.Links) != 0 {
		t.Errorf("links = %v: a link to a dropped device must not become one to the lower file", m.Links)
	}
	skipped := strings.Join(m.Skipped, "\n")
	for _, s := range []string{"dev/sda: block device 8:0 not kept", "mem: character device 1:1", `memlink: hard link to "mem", which is not kept`} {
		if !strings.Contains(skipped, s) {
			t.Errorf("skipped lacks %q: %q", s, m.Skipped)
		}
	}
}

// layer.json stays readable both ways: no "dropped" key when nothing was dropped.
func TestMetaDroppedJSON(t *testing.T) {
	b, err := json.Marshal(&Meta{Digest: "sha256:x"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "dropped") {
		t.Errorf("meta without drops encodes as %s", b)
	}
	var m Meta
	if err := json.Unmarshal([]byte(`{"digest":"sha256:x","dropped":["dev/sda"]}`), &m); err != nil || !slices.Equal(m.Dropped, []string{"dev/sda"}) {
		t.Errorf("decoded %+v, %v", m, err)
	}
}
