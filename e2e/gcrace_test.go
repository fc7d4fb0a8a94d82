package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"flatbed.dev/e2e/faultproxy"
	"flatbed.dev/e2e/harness"
)

// gcRun is one `flatbed gc` run of TestConversionDuringGCLosesNothing.
type gcRun struct {
	start, end time.Time
	code       int
	out        string
}

// Issue 11, done-when 3, last clause: a conversion running during garbage collection loses
// nothing. Five images sharing a base are converted by separate `flatbed serve` processes
// over NATS, each image's own layer slowed down by a proxy (2 to 6 s) so that the shared base,
// and then each finished layer, sits in the store for seconds named by no recorded image; all
// the while `flatbed gc --nats --min-age -1s --grace-period 0` runs again and again, with no
// minimum age to protect anything: the conversions' leases alone must. Afterwards every
// image is converted, verify finds the store sound and every public path reads its files.
func TestConversionDuringGCLosesNothing(tt *testing.T) {
	t := recordFailures(tt)
	reg := harness.StartRegistry(t)
	names := []string{"a", "b", "c", "d", "e"}
	refs, own := imagesOnABase(t, reg.Host, names...)
	px, err := faultproxy.Start(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	for i, n := range names {
		px.Add(faultproxy.Rule{Method: "GET", Path: blobRE("apps/"+n, own[n]), Fault: faultproxy.Fault{Delay: time.Duration(2+i) * time.Second}})
	}
	natsURL, _ := startNATSServerProcess(t)
	storeRoot := t.TempDir()
	repo := filepath.Join(storeRoot, mpRepo)
	for _, s := range mpServices {
		startServeProcess(t, s, natsURL, storeRoot, t.TempDir())
	}
	wl := writeRawWishlist(t, px.Host, refs)

	// The repository exists before the conversion starts, so that gc runs from the start,
	// and it holds one layer no image and no conversion uses: gc must remove that one, and
	// only that one.
	stray := ".layers/00/" + strings.Repeat("0", 64)
	if err := os.MkdirAll(filepath.Join(repo, stray, "layerfs", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		runs []gcRun
	)
	stop := make(chan struct{})
	looped := make(chan struct{})
	go func() {
		defer close(looped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			cmd := exec.CommandContext(ctx, flatbedBin, "gc", mpRepo, "--store-root", storeRoot, "--nats", natsURL, "--min-age", "-1s", "--grace-period", "0")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			r := gcRun{start: time.Now()}
			err := cmd.Run()
			cancel()
			r.end, r.out = time.Now(), out.String()
			if err != nil {
				r.code = -1
				if ee, ok := err.(*exec.ExitError); ok {
					r.code = ee.ExitCode()
				}
			}
			mu.Lock()
			runs = append(runs, r)
			mu.Unlock()
		}
	}()
	convStart := time.Now()
	conv := mpStartConvert(t, "convert", wl, "--nats", natsURL, "--store-root", storeRoot, "--timeout", "60s")
	ok := conv.expectExit0(t)
	convEnd := time.Now()
	close(stop)
	<-looped

	mu.Lock()
	defer mu.Unlock()
	during, keptInFlight := 0, 0
	var failed []string
	for _, r := range runs {
		if r.code != 0 {
			failed = append(failed, fmt.Sprintf("exit %d:\n%s", r.code, r.out))
		}
		if r.start.After(convStart) && r.end.Before(convEnd) {
			during++
		}
		if r.start.After(convStart) && r.end.Before(convEnd) && strings.Contains(r.out, ": unused, but a conversion in flight needs it") {
			keptInFlight++
		}
	}
	t.Logf("convert took %s; gc ran %d times, %d of them wholly during the conversion, %d of those keeping what a conversion in flight needed",
		convEnd.Sub(convStart).Round(time.Millisecond), len(runs), during, keptInFlight)
	for _, r := range runs {
		if strings.Contains(r.out, "in flight") {
			t.Logf("one gc run during the conversion said:\n%s", r.out)
			break
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d gc run(s) failed; the first: %s", len(failed), failed[0])
	}
	if during < 5 {
		t.Errorf("gc ran only %d times during the conversion: the test did not make them overlap", during)
	}
	if keptInFlight == 0 {
		t.Error("no gc run during the conversion kept anything for a conversion in flight: they did not overlap where it matters")
	}
	var removedLines []string
	for _, r := range runs {
		for _, l := range strings.Split(r.out, "\n") {
			if strings.HasPrefix(l, "removed ") {
				removedLines = append(removedLines, l)
			}
		}
	}
	if len(removedLines) != 1 || removedLines[0] != "removed "+stray {
		t.Errorf("gc removed %q, want only %s (everything else unused was the conversions')", removedLines, stray)
	}
	if !ok {
		t.FailNow()
	}
	for _, n := range names {
		pub := filepath.Join(repo, px.Host, "apps", n+":v1")
		for p, want := range map[string]string{"app/" + n: "I am " + n + "\n", "etc/os-release": "ID=flatbed-e2e\n"} {
			if got, err := os.ReadFile(filepath.Join(pub, p)); err != nil || string(got) != want {
				t.Errorf("%s/%s = %q, %v; want %q", pub, p, got, err, want)
			}
		}
	}
	out, _ := runFlatbed(tt, 0, "verify", mpRepo, "--store-root", storeRoot)
	t.Logf("verify: %s", strings.TrimSpace(out))
}
