package store

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// makeLockedTree builds root/a/{locked(0000)/inner(0000)/f, ro(0500)/g, h}.
func makeLockedTree(t testing.TB, root string) {
	locked := filepath.Join(root, "a", "locked")
	ro := filepath.Join(root, "a", "ro")
	for _, d := range []string{filepath.Join(locked, "inner"), ro} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(locked, "inner", "f"), filepath.Join(ro, "g"), filepath.Join(root, "a", "h")} {
		if err := os.WriteFile(f, []byte("x"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		p    string
		mode fs.FileMode
	}{{filepath.Join(locked, "inner"), 0}, {locked, 0}, {ro, 0o500}} {
		if err := os.Chmod(c.p, c.mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRemoveAll(t *testing.T) {
	root := filepath.Join(t.TempDir(), "tree")
	makeLockedTree(t, root)
	if err := RemoveAll(root); err != nil {
		t.Fatalf("RemoveAll: %v", err)
	}
	if _, err := os.Lstat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("tree still there after RemoveAll: %v", err)
	}
	// Removing what is not there is not an error, as with os.RemoveAll.
	if err := RemoveAll(root); err != nil {
		t.Errorf("RemoveAll of a missing path: %v", err)
	}
}

const helperEnv = "FLATBED_STORE_REMOVEALL_HELPER"

// TestRemoveAllUnprivileged runs the removal as an unprivileged user when the tests run as
// root: root ignores directory permissions, so only then is the chmod fall-back exercised.
func TestRemoveAllUnprivileged(t *testing.T) {
	if dir := os.Getenv(helperEnv); dir != "" {
		// Child process: build and remove the tree as whoever we are.
		root := filepath.Join(dir, "tree")
		makeLockedTree(t, root)
		if err := os.RemoveAll(root); err == nil {
			t.Fatal("os.RemoveAll removed a tree with 0000 directories: this user ignores permissions, the test proves nothing")
		}
		if err := RemoveAll(root); err != nil {
			t.Fatalf("RemoveAll: %v", err)
		}
		if _, err := os.Lstat(root); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("tree still there after RemoveAll: %v", err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Setenv(helperEnv, t.TempDir())
		TestRemoveAllUnprivileged(t)
		return
	}
	// As root: re-run this test as nobody, from a copy of the test binary nobody can read.
	const nobody = 65534
	base := t.TempDir()
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	// Open up the directories the testing package made for this test; leave the others alone.
	own := filepath.Dir(base)
	for p := shared; p != "/"; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 != 0 {
			continue
		}
		if p != own && !strings.HasPrefix(p, own+"/") {
			t.Skipf("%s is not searchable by an unprivileged user", p)
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o005); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "store.test")
	copyFile(t, exe, bin)
	work := filepath.Join(shared, "work")
	if err := os.Mkdir(work, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestRemoveAllUnprivileged$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+work, "GOCOVERDIR="+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged run failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestRemoveAllUnprivileged") {
		t.Fatalf("unprivileged run did not run the test:\n%s", out)
	}
	t.Cleanup(func() { _ = RemoveAll(work) })
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
