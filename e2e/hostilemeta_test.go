package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/store"
)

// Images whose manifest or config is hostile: each must end as a clear conversion.failed
// within seconds, with the converting process's memory bounded, while a good image in the
// same run converts.
func TestHostileManifestsFailFastWithBoundedMemory(t *testing.T) {
	reg := harness.StartRegistry(t)
	tiny := tarOf(t, map[string]string{"etc/hello": "hello\n"})
	gz := gzipOf(t, tiny)
	good := rawLayer{rawBlob{gz, types.DockerLayer}, int64(len(gz))}

	// 5,000 layers (the same tiny blob over and over): over --max-layers.
	deep := make([]rawLayer, 5000)
	for i := range deep {
		deep[i] = good
	}
	rawImage(t, reg.Host, "hostile/deep-manifest:v1", configOf(t, repeat(sha256Of(tiny), 5000), nil), deep)

	// A 50 MB config: refused by its descriptor's size, never fetched.
	huge := map[string]string{"pad": strings.Repeat("x", 50<<20)}
	rawImage(t, reg.Host, "hostile/big-config:v1", configOf(t, []string{sha256Of(tiny)}, huge), []rawLayer{good})

	// A zstd layer whose frame asks for a 512 MiB window: a frame header (magic, descriptor
	// 0, window descriptor for 2^29) and the tar in one raw, last block.
	zb := []byte{0x28, 0xb5, 0x2f, 0xfd, 0, (29 - 10) << 3}
	bh := uint32(len(tiny))<<3 | 1
	zb = append(zb, byte(bh), byte(bh>>8), byte(bh>>16))
	zb = append(zb, tiny...)
	rawImage(t, reg.Host, "hostile/zstd-window:v1", configOf(t, []string{sha256Of(tiny)}, nil),
		[]rawLayer{{rawBlob{zb, types.OCILayerZStd}, int64(len(zb))}})

	// A layer descriptor whose size is 0: the size bound must not be disabled by it.
	rawImage(t, reg.Host, "hostile/size-zero:v1", configOf(t, []string{sha256Of(tiny)}, nil), []rawLayer{{good.blob, 0}})

	// The control: a plain image.
	rawImage(t, reg.Host, "plain/ok:v1", configOf(t, []string{sha256Of(tiny)}, nil), []rawLayer{good})

	reasons := map[string]string{
		"hostile/deep-manifest:v1": "5000 layers, more than the limit of 1000",
		"hostile/big-config:v1":    "names a config of 52429020 bytes",
		"hostile/zstd-window:v1":   "declares a window of 512 MiB",
		"hostile/size-zero:v1":     "has size 0 in the manifest",
	}
	var refs []string
	for r := range reasons {
		refs = append(refs, r)
	}
	refs = append(refs, "plain/ok:v1")
	wl := writeRawWishlist(t, reg.Host, refs)
	storeRoot := t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })

	start := time.Now()
	out, stderr, code, maxRSS := runMeasured(t, "convert", wl, "--store-root", storeRoot, "--state-dir", t.TempDir(), "-i", "--timeout", "2m")
	elapsed := time.Since(start)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (some images failed)\nstdout:\n%s\nstderr:\n%s", code, out, lastLines(stderr, 40))
	}
	for ref, reason := range reasons {
		line := lineFor(out, "FAILED", "http://"+reg.Host+"/"+ref+":")
		switch {
		case line == "":
			t.Errorf("%s did not fail\nstdout:\n%s", ref, out)
		case !strings.Contains(line, reason):
			t.Errorf("%s failed for another reason than %q:\n%s", ref, reason, line)
		}
	}
	if lineFor(out, "converted", "http://"+reg.Host+"/plain/ok:v1") == "" {
		t.Errorf("the plain image did not convert next to the hostile ones:\n%s", out)
	}
	// Nothing was retried: each of these fails on its first attempt.
	if strings.Contains(stderr, "will retry") {
		t.Errorf("a hostile image was retried:\n%s", lastLines(stderr, 30))
	}
	// "Within seconds": with retries the run would take at least 1+2+4+8 s of back-off.
	if elapsed > 60*time.Second {
		t.Errorf("the run took %s", elapsed)
	}
	// Bounded memory: the 50 MB config is never read, the 512 MiB window never allocated.
	if maxRSS == 0 || maxRSS > 200<<20 {
		t.Errorf("peak RSS %d MiB, want (measured and) under 200 MiB", maxRSS>>20)
	}
	t.Logf("run took %s, peak RSS %d MiB", elapsed, maxRSS>>20)
}

// A layer already in the store is not reused for an image whose config claims another
// uncompressed content (diff_id) for it: that image fails at once, naming both.
func TestCachedLayerWithWrongDiffIDFails(t *testing.T) {
	reg := harness.StartRegistry(t)
	tiny := tarOf(t, map[string]string{"etc/hello": "hello\n"})
	gz := gzipOf(t, tiny)
	layer := rawLayer{rawBlob{gz, types.DockerLayer}, int64(len(gz))}
	rawImage(t, reg.Host, "plain/honest:v1", configOf(t, []string{sha256Of(tiny)}, nil), []rawLayer{layer})
	lie := sha256Of([]byte("something else"))
	rawImage(t, reg.Host, "hostile/lying-diffid:v1", configOf(t, []string{lie}, nil), []rawLayer{layer})

	storeRoot := t.TempDir()
	state := t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	runFlatbed(t, 0, "convert", writeRawWishlist(t, reg.Host, []string{"plain/honest:v1"}), "--store-root", storeRoot, "--state-dir", state, "-i")
	out, stderr := runFlatbed(t, 1, "convert", writeRawWishlist(t, reg.Host, []string{"hostile/lying-diffid:v1"}), "--store-root", storeRoot, "--state-dir", state, "-i")
	line := lineFor(out, "FAILED", "hostile/lying-diffid:v1")
	if line == "" || !strings.Contains(line, lie) || !strings.Contains(line, sha256Of(tiny)) {
		t.Errorf("the lying image did not fail naming both diff ids:\n%s", out)
	}
	if strings.Contains(stderr, "will retry") {
		t.Errorf("the lying image was retried:\n%s", lastLines(stderr, 30))
	}
	st := store.New(filepath.Join(storeRoot, mpRepo))
	if _, err := os.Lstat(st.PublicPath(reg.Host + "/hostile/lying-diffid:v1")); err == nil {
		t.Error("the lying image was published")
	}
	// Converted in a fresh store (the layer not cached), it fails all the same: the unpacked
	// content is checked against the diff id.
	out, _ = runFlatbed(t, 1, "convert", writeRawWishlist(t, reg.Host, []string{"hostile/lying-diffid:v1"}), "--store-root", t.TempDir(), "--state-dir", t.TempDir(), "-i")
	if lineFor(out, "FAILED", "hostile/lying-diffid:v1") == "" {
		t.Errorf("the lying image did not fail in a fresh store:\n%s", out)
	}
}

func writeRawWishlist(t testing.TB, host string, refs []string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\nuser: e2e\ncvmfs_repo: '" + mpRepo + "'\ninput:\n")
	for _, r := range refs {
		b.WriteString("  - 'http://" + host + "/" + r + "'\n")
	}
	p := filepath.Join(t.TempDir(), "wishlist.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lineFor returns the first line of out starting with prefix and containing s.
func lineFor(out, prefix, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// runMeasured runs flatbed and returns its output, exit code and peak resident memory. The
// peak is read from /proc/<pid>/status (VmHWM) while it runs: a child's rusage counts the
// memory of the test process it was forked from.
func runMeasured(t *testing.T, args ...string) (stdout, stderr string, code int, peak int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flatbedBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var hwm atomic.Int64
	go func() {
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			if b, err := os.ReadFile(status); err == nil {
				for _, l := range strings.Split(string(b), "\n") {
					if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
						kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
						hwm.Store(max(hwm.Load(), kb<<10))
					}
				}
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("flatbed %s: %v", strings.Join(args, " "), err)
		}
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode(), hwm.Load()
}
