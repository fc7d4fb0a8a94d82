package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReplace(t *testing.T) {
	st := New(t.TempDir())
	final := st.FlatDir(configDigest)
	build := func(content string) string {
		t.Helper()
		tmp, err := st.TempDir(final)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, "file"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return tmp
	}
	// No tree yet: the new one is published.
	if err := st.Replace(build("one"), final); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(final, "file")); got != "one" {
		t.Errorf("after the first Replace: %q, want %q", got, "one")
	}
	// A tree there, changed since it was built: replaced by the new one, whole.
	if err := os.WriteFile(filepath.Join(final, "file"), []byte("damaged"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(final, "extra"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := inode(t, final)
	if err := st.Replace(build("two"), final); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(final, "file")); got != "two" {
		t.Errorf("after Replace: %q, want %q", got, "two")
	}
	if _, err := os.Lstat(filepath.Join(final, "extra")); err == nil {
		t.Error("a file of the old tree is in the new one")
	}
	if inode(t, final) == before {
		t.Error("the directory kept its inode: not replaced")
	}
	entries, err := os.ReadDir(filepath.Dir(final))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
