package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flatbed.dev/pkg/imagegen"
)

// runFlatbed runs the flatbed binary and fails the test unless it exits with want.
func runFlatbed(t *testing.T, want int, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flatbedBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("flatbed %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	if code != want {
		t.Fatalf("flatbed %s: exit %d, want %d\nstdout:\n%s\nstderr (tail):\n%s", strings.Join(args, " "), code, want, out.String(), lastLines(errb.String(), 60))
	}
	return out.String(), errb.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

const convertRepo = "e2e.flatbed.local"

// wishlistFor writes a DUCC v1 wishlist converting imgs from the registry at host, with
// thin images pushed back to host under thin/.
func wishlistFor(t *testing.T, host string, imgs []imagegen.Named) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nuser: e2e\ncvmfs_repo: '%s'\noutput_format: '$(scheme)://$(registry)/thin/$(repository):$(tag)'\ninput:\n", convertRepo)
	for _, img := range imgs {
		fmt.Fprintf(&b, "  - 'http://%s/%s'\n", host, img.Ref())
	}
	path := filepath.Join(t.TempDir(), "wishlist.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
