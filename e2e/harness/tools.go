package harness

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// ciRequiresTools reports whether missing tools fail the test instead of
// skipping it: env CI is set and not a false boolean ("", "0", "false").
func ciRequiresTools() bool {
	v, ok := os.LookupEnv("CI")
	if !ok || v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// requireTool returns the path of a tool, or skips the test when it is not
// installed (fails it when CI is set).
func requireTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	msg := tool + " is not installed (apt-get install -y " + pkg + ")"
	if ciRequiresTools() {
		t.Fatalf("%s; CI is set, so the tools are required", msg)
	}
	t.Skipf("%s; skipping (set CI=true to make this a failure)", msg)
	return ""
}

// run runs a command with a timeout and fails the test with its output if it fails.
func run(t testing.TB, timeout time.Duration, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %q: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}
