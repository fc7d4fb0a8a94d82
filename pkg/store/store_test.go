package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	layerDigest  = "sha256:ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
	configDigest = "sha256:0f35000000000000000000000000000000000000000000000000000000000000"
)

func TestPaths(t *testing.T) {
	st := New("/cvmfs/unpacked.cern.ch/")
	layerHex := Hex(layerDigest)
	cfgHex := Hex(configDigest)
	name := "registry.hub.docker.com/library/ubuntu:22.04"
	tests := []struct {
		what      string
		got, want string
	}{
		{"Root is cleaned", st.Root, "/cvmfs/unpacked.cern.ch"},
		{"Hex of a digest", Hex(layerDigest), layerDigest[len("sha256:"):]},
		{"Hex of a bare hex", Hex("abcdef"), "abcdef"},
		{"LayersDir", st.LayersDir(), "/cvmfs/unpacked.cern.ch/.layers"},
		{"LayerDir", st.LayerDir(layerDigest), "/cvmfs/unpacked.cern.ch/.layers/ab/" + layerHex},
		{"LayerDir of bare hex", st.LayerDir(layerHex), "/cvmfs/unpacked.cern.ch/.layers/ab/" + layerHex},
		{"LayerFS", st.LayerFS(layerDigest), "/cvmfs/unpacked.cern.ch/.layers/ab/" + layerHex + "/layerfs"},
		{"LayerMeta", st.LayerMeta(layerDigest), "/cvmfs/unpacked.cern.ch/.layers/ab/" + layerHex + "/.metadata"},
		{"LayerDir of a too short digest", st.LayerDir("sha256:a"), "/cvmfs/unpacked.cern.ch/.layers/__/a"},
		{"FlatDir", st.FlatDir(configDigest), "/cvmfs/unpacked.cern.ch/.flat/0f/" + cfgHex},
		{"ImageName with tag", ImageName("registry.hub.docker.com", "library/ubuntu", "22.04", "sha256:x"), name},
		{"ImageName with digest only", ImageName("r.io", "a/b", "", configDigest), "r.io/a/b@" + configDigest},
		{"MetadataDir", st.MetadataDir(name), "/cvmfs/unpacked.cern.ch/.metadata/" + name},
		{"ManifestPath", st.ManifestPath(name), "/cvmfs/unpacked.cern.ch/.metadata/" + name + "/manifest.json"},
		{"PublicPath", st.PublicPath(name), "/cvmfs/unpacked.cern.ch/" + name},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.what, tt.got, tt.want)
		}
	}
}

func TestHasLayerAndFlat(t *testing.T) {
	st := New(t.TempDir())
	if st.HasLayer(layerDigest) || st.HasFlat(configDigest) {
		t.Fatal("empty store claims to have a layer or a flat tree")
	}
	// A layer directory without layerfs (e.g. only .metadata) is not a layer.
	if err := os.MkdirAll(st.LayerMeta(layerDigest), 0o755); err != nil {
		t.Fatal(err)
	}
	if st.HasLayer(layerDigest) {
		t.Error("HasLayer = true for a layer dir without layerfs")
	}
	if err := os.MkdirAll(st.LayerFS(layerDigest), 0o755); err != nil {
		t.Fatal(err)
	}
	if !st.HasLayer(layerDigest) {
		t.Error("HasLayer = false after layerfs exists")
	}
	// A regular file at the flat path is not a flat tree.
	if err := os.MkdirAll(filepath.Dir(st.FlatDir(configDigest)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(st.FlatDir(configDigest), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st.HasFlat(configDigest) {
		t.Error("HasFlat = true for a regular file")
	}
}

func TestTempDir(t *testing.T) {
	st := New(t.TempDir())
	final := st.LayerDir(layerDigest) // its parent .layers/ab does not exist yet
	a, err := st.TempDir(final)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.TempDir(final)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Errorf("two TempDir calls returned the same directory %s", a)
	}
	for _, d := range []string{a, b} {
		if got, want := filepath.Dir(d), filepath.Dir(final); got != want {
			t.Errorf("TempDir parent = %s, want %s (same file system as the final name)", got, want)
		}
		if got, want := filepath.Base(d), ".tmp-"+filepath.Base(final)+"-"; !strings.HasPrefix(got, want) {
			t.Errorf("TempDir name = %s, want prefix %s", got, want)
		}
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fi.Mode().Perm(), fs.FileMode(0o755); got != want || !fi.IsDir() {
			t.Errorf("TempDir mode = %v (dir %v), want %v", got, fi.IsDir(), want)
		}
	}
	if _, err := os.Stat(final); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("TempDir created the final name: %v", err)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPublishWon(t *testing.T) {
	st := New(t.TempDir())
	final := st.LayerDir(layerDigest)
	tmp, err := st.TempDir(final)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "f"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	won, err := st.Publish(tmp, final)
	if err != nil {
		t.Fatal(err)
	}
	if !won {
		t.Error("Publish into a free name: won = false")
	}
	if got, want := readFile(t, filepath.Join(final, "f")), "mine"; got != want {
		t.Errorf("published content = %q, want %q", got, want)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary directory still there after winning: %v", err)
	}
}

func TestPublishLostRace(t *testing.T) {
	for _, tc := range []struct {
		name string
		fill func(t *testing.T, tmp string) // what the loser's copy holds
	}{
		{"plain copy", func(t *testing.T, tmp string) {
			if err := os.WriteFile(filepath.Join(tmp, "f"), []byte("loser"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"copy with 0000 directories", func(t *testing.T, tmp string) {
			locked := filepath.Join(tmp, "a", "locked")
			if err := os.MkdirAll(filepath.Join(locked, "inner"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(locked, "inner", "f"), []byte("loser"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{filepath.Join(locked, "inner"), locked} {
				if err := os.Chmod(d, 0); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := New(t.TempDir())
			final := st.FlatDir(configDigest)
			// The winner's copy, published first.
			first, err := st.TempDir(final)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(first, "f"), []byte("winner"), 0o644); err != nil {
				t.Fatal(err)
			}
			if won, err := st.Publish(first, final); err != nil || !won {
				t.Fatalf("first Publish = %v, %v; want true, nil", won, err)
			}
			dirIno, fileIno := inode(t, final), inode(t, filepath.Join(final, "f"))
			fi, _ := os.Stat(filepath.Join(final, "f"))

			tmp, err := st.TempDir(final)
			if err != nil {
				t.Fatal(err)
			}
			tc.fill(t, tmp)
			won, err := st.Publish(tmp, final)
			if err != nil {
				t.Fatalf("losing Publish returned an error: %v", err)
			}
			if won {
				t.Error("losing Publish: won = true")
			}
			if _, err := os.Lstat(tmp); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("loser's temporary directory still there: %v", err)
			}
			if got, want := inode(t, final), dirIno; got != want {
				t.Errorf("final dir inode = %d, want %d (existing copy replaced)", got, want)
			}
			if got, want := inode(t, filepath.Join(final, "f")), fileIno; got != want {
				t.Errorf("final file inode = %d, want %d", got, want)
			}
			if got, want := readFile(t, filepath.Join(final, "f")), "winner"; got != want {
				t.Errorf("final content = %q, want %q", got, want)
			}
			fi2, _ := os.Stat(filepath.Join(final, "f"))
			if !fi2.ModTime().Equal(fi.ModTime()) {
				t.Errorf("final file mtime changed: %v -> %v", fi.ModTime(), fi2.ModTime())
			}
			entries, err := os.ReadDir(filepath.Dir(final))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("shard dir holds %v, want only %s", names, filepath.Base(final))
			}
		})
	}
}

func TestPublishError(t *testing.T) {
	st := New(t.TempDir())
	tmp := filepath.Join(st.Root, "missing-tmp")
	won, err := st.Publish(tmp, st.LayerDir(layerDigest))
	if err == nil || won {
		t.Errorf("Publish of a missing temporary dir = %v, %v; want false and an error", won, err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "manifest.json") // sub does not exist yet

	changed, err := WriteFileAtomic(p, []byte("one"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Error("first write: changed = false")
	}
	if got, want := readFile(t, p), "one"; got != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), fs.FileMode(0o644); got != want {
		t.Errorf("mode = %v, want %v", got, want)
	}

	// Same content: nothing rewritten, same inode and mtime.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	ino := inode(t, p)
	changed, err = WriteFileAtomic(p, []byte("one"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if changed {
		t.Error("unchanged content: changed = true")
	}
	if got := inode(t, p); got != ino {
		t.Errorf("unchanged content: inode %d -> %d", ino, got)
	}
	fi, _ = os.Stat(p)
	if !fi.ModTime().Equal(old) {
		t.Errorf("unchanged content: mtime %v -> %v", old, fi.ModTime())
	}

	// New content: replaced.
	changed, err = WriteFileAtomic(p, []byte("two"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Error("changed content: changed = false")
	}
	if got, want := readFile(t, p), "two"; got != want {
		t.Errorf("content = %q, want %q", got, want)
	}
	fi, _ = os.Stat(p)
	if got, want := fi.Mode().Perm(), fs.FileMode(0o600); got != want {
		t.Errorf("mode = %v, want %v", got, want)
	}

	// No temporary files left behind.
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (temporary files left?)", len(entries))
	}
}

func TestSymlinkAtomic(t *testing.T) {
	const target = "../../.flat/0f/0f35"
	tests := []struct {
		name        string
		before      func(t *testing.T, p string) // what is at the path first
		wantChanged bool
		wantErr     bool
		keepInode   bool // the link must be left untouched
	}{
		{name: "creates a link", before: func(*testing.T, string) {}, wantChanged: true},
		{name: "leaves an identical link alone", before: func(t *testing.T, p string) {
			mustSymlink(t, target, p)
		}, keepInode: true},
		{name: "replaces a different link", before: func(t *testing.T, p string) {
			mustSymlink(t, "../../.flat/aa/aaaa", p)
		}, wantChanged: true},
		{name: "replaces an absolute link to the same place", before: func(t *testing.T, p string) {
			mustSymlink(t, "/somewhere/.flat/0f/0f35", p)
		}, wantChanged: true},
		{name: "refuses a directory", before: func(t *testing.T, p string) {
			if err := os.MkdirAll(filepath.Join(p, "keep"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, "registry.io", "library", "ubuntu:22.04")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			tt.before(t, p)
			var ino uint64
			if tt.keepInode {
				ino = inode(t, p)
			}
			changed, err := SymlinkAtomic(target, p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("SymlinkAtomic error = %v, want error %v", err, tt.wantErr)
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if tt.wantErr {
				if fi, err := os.Lstat(filepath.Join(p, "keep")); err != nil || !fi.IsDir() {
					t.Errorf("refused directory was modified: %v", err)
				}
			} else {
				got, err := os.Readlink(p)
				if err != nil {
					t.Fatal(err)
				}
				if got != target {
					t.Errorf("link target = %q, want %q", got, target)
				}
			}
			if tt.keepInode {
				if got := inode(t, p); got != ino {
					t.Errorf("identical link was replaced: inode %d -> %d", ino, got)
				}
			}
			// Nothing but the public path is left in its directory.
			entries, _ := os.ReadDir(filepath.Dir(p))
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".tmp-") {
					t.Errorf("temporary entry %s left behind", e.Name())
				}
			}
		})
	}
}

func TestSymlinkAtomicCreatesParents(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a", "b", "c:1")
	if _, err := SymlinkAtomic("../../x", p); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(p); err != nil || got != "../../x" {
		t.Errorf("Readlink = %q, %v; want ../../x", got, err)
	}
}

func mustSymlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// A writer killed mid-way leaves its temporary behind, unlocked: the next writer of the same
// final name removes it. A temporary still locked by a live writer is left alone.
func TestStaleTemporariesAreCleaned(t *testing.T) {
	s := New(t.TempDir())
	final := s.LayerDir("sha256:" + strings.Repeat("ab", 32))
	stale := filepath.Dir(final) + "/.tmp-" + filepath.Base(final) + "-dead"
	if err := os.MkdirAll(stale+"/layerfs/x", 0o755); err != nil {
		t.Fatal(err)
	}
	live, err := s.TempDir(final)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary of a dead writer survived: %v", err)
	}
	other, err := s.TempDir(final) // a second live writer must not remove the first
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("a live writer's temporary was removed: %v", err)
	}
	if won, err := s.Publish(live, final); err != nil || !won {
		t.Fatalf("publish: %v %v", won, err)
	}
	if won, err := s.Publish(other, final); err != nil || won {
		t.Fatalf("second publish: %v %v", won, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(final))
	if len(entries) != 1 {
		t.Errorf("left beside the layer: %v", entries)
	}
}
