package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `flatbed watch --exec` runs its command exactly once per completed conversion, with the
// event on its standard input; `--since` replays what the stream still holds.
func TestWatchExecOncePerResult(t *testing.T) {
	imgs := smallImages(t, "watch/img", 3)
	reg := mpPushImages(t, imgs)
	port := childFreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	storeRoot := t.TempDir()
	serve := startChild(t, context.Background(), "serve all", flatbedBin, append([]string{"serve"}, append(mpServices,
		"--nats-listen", fmt.Sprintf("127.0.0.1:%d", port), "--store-root", storeRoot, "--state-dir", t.TempDir(), "--metrics-addr", "127.0.0.1:0")...)...)
	t.Cleanup(func() { serve.stop(t, mpGracefulStop) })
	waitServing(t, serve)

	out := filepath.Join(t.TempDir(), "results.jsonl")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	watch := startChild(t, ctx, "watch", flatbedBin, "watch", "--nats", url, "--type", "completed", "--exec", "cat >> "+out)
	time.Sleep(500 * time.Millisecond) // watching from now on: started before the run

	// Three images, and one tag that does not exist (a failure, not watched).
	wl := mpWriteWishlist(t, reg.Host, imgs)
	b, _ := os.ReadFile(wl)
	b = append(b, []byte(fmt.Sprintf("  - 'http://%s/no/such:tag'\n", reg.Host))...)
	if err := os.WriteFile(wl, b, 0o644); err != nil {
		t.Fatal(err)
	}
	runFlatbed(t, 1, "convert", wl, "-i", "--nats", url, "--store-root", storeRoot, "--timeout", "90s")

	var lines []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		b, _ := os.ReadFile(out)
		lines = strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) >= 3 && lines[0] != "" {
			break
		}
	}
	time.Sleep(time.Second) // a duplicate would arrive now
	b, _ = os.ReadFile(out)
	lines = strings.Split(strings.TrimSpace(string(b)), "\n")
	seen := map[string]int{}
	for _, l := range lines {
		var ev struct {
			Type string `json:"type"`
			Data struct {
				Job struct{ Image string } `json:"job"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not an event: %q (%v)", l, err)
		}
		if ev.Type != "conversion.completed" {
			t.Errorf("watched a %s with --type completed", ev.Type)
		}
		seen[ev.Data.Job.Image]++
	}
	for _, img := range imgs {
		if n := seen["http://"+reg.Host+"/"+img.Ref()]; n != 1 {
			t.Errorf("%s: --exec ran %d times, want once\n%s", img.Ref(), n, b)
		}
	}
	if len(lines) != len(imgs) {
		t.Errorf("%d results for %d completed conversions:\n%s", len(lines), len(imgs), b)
	}
	if watch.exited() {
		t.Errorf("watch stopped: %s", watch.state())
	}
	// Replaying from ten minutes ago yields the same three, then the failure.
	replay, _ := runFlatbed(t, 0, "watch", "--nats", url, "--since", "10m", "--count", "4")
	if n := strings.Count(replay, `"conversion.completed"`); n != 3 || !strings.Contains(replay, `"conversion.failed"`) {
		t.Errorf("watch --since replayed:\n%s", replay)
	}
}
