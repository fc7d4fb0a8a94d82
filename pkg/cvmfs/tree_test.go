package cvmfs_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"flatbed.dev/pkg/cvmfs"
)

func TestWriteTree(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "usr", "bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr", "bin", "a"), []byte("hello"), 0o755)
	os.Link(filepath.Join(dir, "usr", "bin", "a"), filepath.Join(dir, "usr", "bin", "b"))
	os.Symlink("bin/a", filepath.Join(dir, "usr", "c"))
	var buf bytes.Buffer
	if err := cvmfs.WriteTree(context.Background(), &buf, dir); err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	body := ""
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		if h.Name == "usr/bin/a" {
			b, _ := io.ReadAll(tr)
			body = string(b)
		}
	}
	if len(got) != 5 || got["usr/"] == nil || got["usr/bin/"] == nil || body != "hello" || got["usr/bin/a"].Mode&0o777 != 0o755 {
		t.Errorf("entries %v, body %q", got, body)
	}
	if h := got["usr/bin/b"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != "usr/bin/a" {
		t.Errorf("hard link %+v", h)
	}
	if h := got["usr/c"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "bin/a" {
		t.Errorf("symlink %+v", h)
	}
}
