package layer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The tally recorded at extraction is what the tree holds, and any damage shows in it.
func TestTallyRecordedAndDamageShows(t *testing.T) {
	dir, meta := mustExtract(t, WhiteoutOCI,
		dirEnt("etc", 0o755), file("etc/passwd", "root:x:0:0\n", 0o644), file("etc/group", "root:x:0:\n", 0o644),
		linkEnt("etc/passwd-", "etc/passwd"), symlinkEnt("etc/mtab", "/proc/mounts"))
	want := Tally{Files: 3, Bytes: 11 + 10 + 11, Dirs: 1, Symlinks: 1}
	if meta.Tally == nil || *meta.Tally != want {
		t.Fatalf("tally %+v, want %+v", meta.Tally, want)
	}
	if d := want.Diff(want); d != "" {
		t.Errorf("a tally differs from itself: %s", d)
	}
	// A file cut short.
	if err := os.Truncate(filepath.Join(dir, "etc/group"), 4); err != nil {
		t.Fatal(err)
	}
	got, err := Count(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := want.Diff(got); !strings.Contains(d, "bytes 26, recorded 32") {
		t.Errorf("truncation: %q", d)
	}
	// A file removed.
	if err := os.Remove(filepath.Join(dir, "etc/passwd-")); err != nil {
		t.Fatal(err)
	}
	got, _ = Count(dir)
	if d := want.Diff(got); !strings.Contains(d, "files 2, recorded 3") {
		t.Errorf("removal: %q", d)
	}
}
