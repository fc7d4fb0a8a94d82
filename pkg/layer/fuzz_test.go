package layer

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/store"
)

// fuzzSeedTop is where the seeds' absolute names and symlinks aim; it must never appear.
const fuzzSeedTop = "/tmp/flatbed-fuzz-seed"

// FuzzExtract feeds arbitrary bytes to Extract (as given, or gzip-wrapped when mode&1; in
// the overlay whiteout form when mode&2 and this process can make it), with small limits,
// and checks the invariant: no panic, nothing outside the layer directory created, changed
// or removed, and every path below it reachable from the root without following a symlink.
// Seeds are the hostile corpus (all but the multi-megabyte cases) plus a small bomb.
//
//	go test -run='^$' -fuzz=FuzzExtract -fuzztime=60s ./layer
func FuzzExtract(f *testing.F) {
	for _, c := range hostileCorpus(f, fuzzSeedTop) {
		if len(c.blob) > 256<<10 {
			continue
		}
		f.Add(c.blob, uint8(0))
		if !bytes.HasPrefix(c.blob, magicGzip) {
			f.Add(c.blob, uint8(3))
		}
	}
	f.Add(gzipBomb(rawHeader('0', "bomb", 4<<24, ""), 4), uint8(2))
	f.Add(mkTar(f, whiteoutLayer...), uint8(2))
	f.Add(mkTar(f, file("a/b", "x", 0o644), linkEnt("c", "a/b"), symlinkEnt("d", "a"), dirEnt("d/", 0o700)), uint8(1))
	overlay := DefaultWhiteouts(f.TempDir()) == WhiteoutOverlay
	passwd := statOf(f, "/etc/passwd")
	// One sentinel tree per fuzzing process; each input gets a fresh layer dir in it (fewer
	// file system operations per input, and any change to the tree fails at once).
	top := f.TempDir()
	parent, _ := sentinelTree(f, top)
	if err := os.Remove(filepath.Join(parent, "layerfs")); err != nil {
		f.Fatal(err)
	}
	before := snapshot(f, top, "")
	var n int

	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		n++
		dir := filepath.Join(parent, fmt.Sprintf("layerfs-%d", n))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer store.RemoveAll(dir)
		blob := data
		if mode&1 != 0 {
			blob = gzBytes(data)
		}
		format := WhiteoutOCI
		if mode&2 != 0 && overlay {
			format = WhiteoutOverlay
		}
		opts := Options{Whiteouts: format, MaxUncompressedBytes: 64 << 10, MaxEntries: 256, MaxPathBytes: 512, MaxPathDepth: 32}
		m, err := Extract(context.Background(), bytes.NewReader(blob), dir, Want{Digest: sha(blob), Size: int64(len(blob))}, opts)
		if err == nil && m.Entries > 256 {
			t.Errorf("%d entries accepted, limit 256", m.Entries)
		}
		after := snapshot(t, top, dir)
		delete(after, dir)
		// parent itself changes with each fresh layer dir: only its entries count.
		after[parent] = before[parent]
		if d := diffSnapshots(before, after); len(d) > 0 {
			t.Fatalf("outside the layer dir (err %v):\n%s", err, strings.Join(d, "\n"))
		}
		if _, err := os.Lstat(fuzzSeedTop); err == nil {
			t.Fatalf("%s exists", fuzzSeedTop)
		}
		if statOf(t, "/etc/passwd") != passwd {
			t.Fatal("host /etc/passwd changed")
		}
		assertBeneath(t, dir)
	})
}

// assertBeneath checks that every path below dir is reached from dir without following a
// symlink and without leaving it, and is the very file a plain lstat finds.
func assertBeneath(t *testing.T, dir string) {
	t.Helper()
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		how := unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		fd, err := unix.Openat2(root, rel, &how)
		if err != nil {
			t.Errorf("%s does not resolve beneath the layer dir: %v", rel, err)
			return nil
		}
		defer unix.Close(fd)
		var viaFd, viaPath unix.Stat_t
		if err := unix.Fstat(fd, &viaFd); err != nil {
			return err
		}
		if err := unix.Lstat(p, &viaPath); err != nil {
			return err
		}
		if viaFd.Ino != viaPath.Ino || viaFd.Dev != viaPath.Dev {
			t.Errorf("%s: lstat and beneath-resolution disagree", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
