package singularity

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	root := t.TempDir()
	// An image may already have a file where the sandbox wants a symlink.
	if err := os.WriteFile(filepath.Join(root, "environment"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{Env: []string{"PATH=/usr/bin:/bin", "FOO=it's $HOME", "1BAD=x"}, Cmd: []string{"echo", "hi there"}}
	if err := Write(root, c); err != nil {
		t.Fatal(err)
	}
	for link, want := range map[string]string{"singularity": ".singularity.d/runscript", ".run": ".singularity.d/actions/run", "environment": ".singularity.d/env/90-environment.sh"} {
		got, err := os.Readlink(filepath.Join(root, link))
		if err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", link, got, err, want)
		}
	}
	for _, d := range []string{"actions", "env", "libs"} {
		if fi, err := os.Stat(filepath.Join(root, ".singularity.d", d)); err != nil || !fi.IsDir() {
			t.Errorf(".singularity.d/%s missing", d)
		}
	}
	env, err := os.ReadFile(filepath.Join(root, ".singularity.d/env/90-environment.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(env), "1BAD") {
		t.Error("invalid variable name exported")
	}
	// The exports must give the exact values back when sourced by a shell.
	out, err := exec.Command("sh", "-c", ". "+filepath.Join(root, ".singularity.d/env/90-environment.sh")+` && printf '%s|%s' "$FOO" "$PATH"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != "it's $HOME|/usr/bin:/bin" {
		t.Errorf("sourced env = %q", got)
	}
	rs, _ := os.ReadFile(filepath.Join(root, ".singularity.d/runscript"))
	if !strings.Contains(string(rs), "exec 'echo' 'hi there'") {
		t.Errorf("runscript does not run Cmd:\n%s", rs)
	}
}
