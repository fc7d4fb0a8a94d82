package singularity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flatbed.dev/pkg/beneath"
	"flatbed.dev/pkg/beneath/beneathtest"
)

// Every name Write writes at, or through, may hold whatever the image put there: a symlink
// out of the root, a fifo, a device. Write must replace it, never follow or open it.
func TestWriteOverHostileEntries(t *testing.T) {
	names := []string{
		".singularity.d",
		".singularity.d/env",
		".singularity.d/actions",
		".singularity.d/env/90-environment.sh",
		".singularity.d/runscript",
		".singularity.d/actions/run",
		"environment",
		"singularity",
	}
	c := Config{Env: []string{"FOO=from the image", "PATH=/bin"}, Cmd: []string{"true"}}
	for _, name := range names {
		for _, k := range beneathtest.Kinds() {
			t.Run(name+" "+k.Name, func(t *testing.T) {
				tr := beneathtest.NewTree(t)
				k.Make(t, tr, filepath.Join(tr.Root, name))
				if err := beneathtest.Within(t, 5*time.Second, func() error { return Write(tr.Root, c) }); err != nil {
					t.Fatal(err)
				}
				tr.CheckOutside(t)
				checkSandbox(t, tr.Root, c)
			})
		}
	}
}

// The same holds where the kernel has no openat2 and pkg/beneath walks each component.
func TestWriteOverHostileEntriesWithoutOpenat2(t *testing.T) {
	t.Cleanup(beneath.WithoutOpenat2())
	TestWriteOverHostileEntries(t)
}

// checkSandbox fails t unless every directory, file and link Write makes is a real one of
// its kind, with the expected content or target.
func checkSandbox(t *testing.T, root string, c Config) {
	t.Helper()
	for _, d := range []string{".singularity.d", ".singularity.d/actions", ".singularity.d/env", ".singularity.d/libs"} {
		if fi, err := os.Lstat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s is not a directory (%v)", d, err)
		}
	}
	for name, want := range files(c) {
		p := filepath.Join(root, ".singularity.d", name)
		if fi, err := os.Lstat(p); err != nil || fi.Mode() != 0o755 {
			t.Errorf(".singularity.d/%s: %v, want a regular file 0755", name, describe(fi, err))
			continue
		}
		if got, _ := os.ReadFile(p); string(got) != want {
			t.Errorf(".singularity.d/%s = %q, want %q", name, got, want)
		}
	}
	env, _ := os.ReadFile(filepath.Join(root, ".singularity.d/env/90-environment.sh"))
	if !strings.Contains(string(env), "export FOO='from the image'\n") {
		t.Errorf("the env script does not export the image's Env:\n%s", env)
	}
	for _, l := range links {
		if got, err := os.Readlink(filepath.Join(root, l[0])); err != nil || got != l[1] {
			t.Errorf("%s -> %q (%v), want %q", l[0], got, err, l[1])
		}
	}
}

func describe(fi os.FileInfo, err error) string {
	if err != nil {
		return err.Error()
	}
	return fi.Mode().String()
}
