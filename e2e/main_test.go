package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// flatbedBin and natsServerBin are built once for every test of the package.
var flatbedBin, natsServerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flatbed-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	flatbedBin = filepath.Join(dir, "flatbed")
	natsServerBin = filepath.Join(dir, "nats-server")
	builds := []struct{ dir, out, pkg string }{
		{"../cmd/flatbed", flatbedBin, "."},
		// The same nats-server version flatbed embeds (Debian's is too old), from the module cache.
		{"../events", natsServerBin, "github.com/nats-io/nats-server/v2"},
	}
	for _, b := range builds {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir = b.dir
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", b.out, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
