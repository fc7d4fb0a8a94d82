package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Concurrent read-modify-writes each see the one before, and leave nothing but the file.
func TestUpdateFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sub", "origin.json") // sub does not exist yet
	add := func(line string) func([]byte) ([]byte, error) {
		return func(old []byte) ([]byte, error) {
			if slices.Contains(strings.Split(string(old), "\n"), line) {
				return old, nil
			}
			return append(old, line+"\n"...), nil
		}
	}
	const writers = 16
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := UpdateFileAtomic(p, 0o644, add(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := strings.Count(readFile(t, p), "\n"); got != writers {
		t.Errorf("%d lines after %d concurrent updates, want %d (an update was lost):\n%s", got, writers, writers, readFile(t, p))
	}
	ino := inode(t, p)
	changed, err := UpdateFileAtomic(p, 0o644, add("3"))
	if err != nil || changed {
		t.Errorf("unchanged update = %v, %v; want false, nil", changed, err)
	}
	if got := inode(t, p); got != ino {
		t.Errorf("unchanged update: inode %d -> %d", ino, got)
	}
	if _, err := UpdateFileAtomic(p, 0o644, func([]byte) ([]byte, error) { return nil, errors.New("refused") }); err == nil || err.Error() != "refused" {
		t.Errorf("failing update: %v, want its error", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only origin.json (no lock or temporary files)", names)
	}
}

// An update that leaves a missing file missing creates nothing.
func TestUpdateFileAtomicNoFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "origin.json")
	changed, err := UpdateFileAtomic(p, 0o644, func(old []byte) ([]byte, error) { return old, nil })
	if err != nil || changed {
		t.Errorf("UpdateFileAtomic = %v, %v; want false, nil", changed, err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was created: %v", p, err)
	}
}
