package client_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// A program that imports the client links none of the pipeline's heavy modules: not the NATS
// server, watermill or Prometheus (events/bus, the services) nor a JSON-Schema library
// (events/schema).
func TestNoHeavyDependencies(t *testing.T) {
	heavy := []string{
		"github.com/nats-io/nats-server",
		"github.com/ThreeDotsLabs/watermill",
		"github.com/prometheus/",
		"github.com/invopop/jsonschema",
		"github.com/santhosh-tekuri/jsonschema",
	}
	for _, pkg := range []string{"flatbed.dev/events/client", "flatbed.dev/events"} {
		out, err := exec.Command(goTool(t), "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		modules := strings.Fields(string(out))
		if !slices.Contains(modules, "github.com/nats-io/nats.go") {
			t.Errorf("go list -deps %s does not name nats.go: is it listing anything?\n%s", pkg, out)
		}
		for _, m := range modules {
			for _, h := range heavy {
				if strings.HasPrefix(m, h) {
					t.Errorf("%s depends on %s", pkg, m)
				}
			}
		}
	}
}

// goTool is the go command of the toolchain running the test.
func goTool(t *testing.T) string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list dependencies with")
	}
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
