package e2e

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's examples are its code blocks; each one with a language carries a marker
// comment on the line before it: `<!-- example: run … -->` or `<!-- example: not run …: why -->`.
var exampleMarker = regexp.MustCompile(`^<!-- example: (.*) -->$`)

const (
	// readmeDemoRegistry is how the README keeps the demo registry up for its examples.
	readmeDemoRegistry = "bin/flatbed demo --keep-registry"
	readmeBlockTimeout = 5 * time.Minute
)

type readmeBlock struct {
	line          int // of the opening fence
	lang, code    string
	run           bool
	needsRegistry bool
	marker        string
}

// readmeBlocks returns the code blocks of README.md that have a language, with their markers.
func readmeBlocks(t *testing.T, path string) []readmeBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []readmeBlock
	var cur *readmeBlock
	var code strings.Builder
	prev := "" // the last non-blank line outside a block
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur != nil && strings.HasPrefix(line, "```"):
			cur.code = code.String()
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			code.WriteString(line + "\n")
		case strings.HasPrefix(line, "```") && strings.TrimPrefix(line, "```") != "":
			cur = &readmeBlock{line: n, lang: strings.TrimPrefix(line, "```")}
			code.Reset()
			if m := exampleMarker.FindStringSubmatch(prev); m != nil {
				cur.marker = m[1]
				cur.run = strings.HasPrefix(m[1], "run")
				cur.needsRegistry = cur.run && strings.Contains(m[1], "needs the demo registry")
			}
		case strings.HasPrefix(line, "```"):
			cur = &readmeBlock{line: n, marker: "a layout, not a command"}
			code.Reset()
		case strings.TrimSpace(line) != "":
			prev = line
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// readmeEnv is the environment of the examples: this one with a fresh HOME (so the default
// store and state directory are the test's), Go's caches and settings kept.
func readmeEnv(t *testing.T, home string) []string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH", "GOENV").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	vals := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(vals) != 4 {
		t.Fatalf("go env printed %q", out)
	}
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_") || strings.HasPrefix(kv, "DOCKER_CONFIG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "GOCACHE="+vals[0], "GOMODCACHE="+vals[1], "GOPATH="+vals[2], "GOENV="+vals[3])
}

// shellCommand runs script with bash -e from dir in a process group of its own, so that the
// processes it leaves in the background are ended with it.
func shellCommand(ctx context.Context, dir string, env []string, script string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// killGroup ends what a shell of shellCommand left running: its own process group only.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

func runExample(t *testing.T, dir string, env []string, name, script string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readmeBlockTimeout)
	defer cancel()
	cmd := shellCommand(ctx, dir, env, script)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	killGroup(cmd)
	if err != nil {
		t.Fatalf("%s failed after %s: %v\n--- script ---\n%s--- output (tail) ---\n%s", name, time.Since(start).Round(time.Second), err, script, lastLines(string(out), 60))
	}
	t.Logf("%s: ok in %s; output (tail):\n%s", name, time.Since(start).Round(time.Second), lastLines(string(out), 12))
}

// startDemoRegistry runs the README's `bin/flatbed demo --keep-registry` and waits until it
// says the registry stays up.
func startDemoRegistry(t *testing.T, dir string, env []string) {
	t.Helper()
	logs := t.TempDir()
	stdout, stderr := filepath.Join(logs, "stdout"), filepath.Join(logs, "stderr")
	cmd := shellCommand(context.Background(), dir, env, "exec "+readmeDemoRegistry+" >"+stdout+" 2>"+stderr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s after SIGTERM: %v, want exit 0", readmeDemoRegistry, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30s of SIGTERM", readmeDemoRegistry)
		}
		killGroup(cmd)
	})
	for deadline := time.Now().Add(readmeBlockTimeout); ; time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(stdout)
		if strings.Contains(string(b), "The registry stays up at http://127.0.0.1:5055") {
			return
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("%s exited (%v) before its registry was up\n%s\n%s", readmeDemoRegistry, err, b, childLogTail(stderr))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: registry not up within %s\n%s", readmeDemoRegistry, readmeBlockTimeout, b)
		}
	}
}

// TestReadmeExamples runs, as written, every code block of README.md marked `example: run`,
// from the top of the repository with a fresh HOME, after `make demo`; blocks marked as
// needing the demo registry run while the README's `bin/flatbed demo --keep-registry` serves
// it. Every block with a language must be marked, so no new example goes unproven.
func TestReadmeExamples(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), readmeDemoRegistry) {
		t.Errorf("README.md no longer says how to keep the demo registry up (%q): fix it or this test", readmeDemoRegistry)
	}
	blocks := readmeBlocks(t, filepath.Join(root, "README.md"))
	runs := 0
	for _, b := range blocks {
		if b.lang != "" && b.marker == "" {
			t.Errorf("README.md:%d: a ```%s block without an <!-- example: … --> line before it: mark it run, or not run with the reason", b.line, b.lang)
		}
		if b.run {
			runs++
		}
	}
	if runs == 0 {
		t.Fatal("no README block is marked to run")
	}
	if t.Failed() {
		t.FailNow()
	}
	// The examples name these fixed addresses.
	for _, addr := range []string{"127.0.0.1:5055", "127.0.0.1:4222"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) && !ciRequired() {
				t.Skipf("%s is in use: the README's examples need it (set CI=true to make this a failure)", addr)
			}
			t.Fatalf("%s: %v (the README's examples need it)", addr, err)
		}
		ln.Close()
	}
	env := readmeEnv(t, t.TempDir())
	runExample(t, root, env, "make demo", "make demo")
	registry := false
	for _, b := range blocks {
		name := "README.md:" + strconv.Itoa(b.line)
		if !b.run {
			if b.lang != "" {
				t.Logf("%s: not run: %s", name, b.marker)
			}
			continue
		}
		if b.needsRegistry && !registry {
			startDemoRegistry(t, root, env)
			registry = true
		}
		runExample(t, root, env, name, b.code)
	}
}

func ciRequired() bool {
	v := os.Getenv("CI")
	return v != "" && v != "0" && v != "false"
}
