package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two `flatbed serve` processes of other services than the front door, started at once on
// one host with the default --http-addr (127.0.0.1:8780), both come up: only a process that
// runs the front door binds its address, so they do not collide on it.
func TestServeWithoutFrontdoorBindsNoFrontdoorAddress(t *testing.T) {
	natsURL, _ := startNATSServerProcess(t)
	tmp := t.TempDir()
	var procs []*childProcess
	for _, s := range []string{"resolver", "ingester"} {
		procs = append(procs, startChild(t, context.Background(), "serve "+s, flatbedBin, "serve", s,
			"--nats", natsURL, "--store-root", filepath.Join(tmp, "store"), "--state-dir", filepath.Join(tmp, "state-"+s),
			"--metrics-addr", "127.0.0.1:0"))
	}
	for _, p := range procs {
		waitServeReady(t, p)
	}
	for _, p := range procs {
		logs, err := os.ReadFile(p.stderr)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(logs), "front door listening") || strings.Contains(string(logs), "--http-addr") {
			t.Errorf("%s set up the front door's listener:\n%s", p.name, logs)
		}
		if p.exited() {
			t.Errorf("%s exited: %s", p.name, p.state())
		}
	}
	for _, p := range procs {
		p.stop(t, mpGracefulStop)
	}
}
