package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flatbed.dev/e2e/faultproxy"
	"flatbed.dev/e2e/harness"
)

// A layer that goes missing from the store after it was ingested and before its image is
// flattened (an operator's rm, a gc without --nats and a low --min-age, disk trouble) is
// requested again by the flattener, and the conversion completes within seconds instead of
// waiting for the convert timeout. Separate `flatbed serve` processes over a real
// nats-server; the image's own layer is slowed by a proxy (8 s) so that its base sits in the
// store, reported ingested, while the flattener is restarted and the test removes the base.
func TestLayerGoneBeforeFlatteningIsIngestedAgain(tt *testing.T) {
	t := recordFailures(tt)
	reg := harness.StartRegistry(t)
	refs, own := imagesOnABase(t, reg.Host, "gone")
	px, err := faultproxy.Start(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	px.Add(faultproxy.Rule{Method: "GET", Path: blobRE("apps/gone", own["gone"]), Fault: faultproxy.Fault{Delay: 8 * time.Second}})
	natsURL, _ := startNATSServerProcess(t)
	storeRoot := t.TempDir()
	repo := filepath.Join(storeRoot, mpRepo)
	var flattener *childProcess
	for _, s := range mpServices {
		p := startServeProcess(t, s, natsURL, storeRoot, t.TempDir())
		if s == "flattener" {
			flattener = p
		}
	}
	wl := writeRawWishlist(t, px.Host, refs)

	start := time.Now()
	conv := mpStartConvert(t, "convert", wl, "--nats", natsURL, "--store-root", storeRoot, "--timeout", "60s")
	ownHex := strings.TrimPrefix(own["gone"], "sha256:")
	var base string // the base layer's directory, once ingested
	for deadline := time.Now().Add(20 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		dirs, _ := filepath.Glob(filepath.Join(repo, ".layers", "*", "*", "layerfs"))
		for _, d := range dirs {
			if hex := filepath.Base(filepath.Dir(d)); hex != ownHex && !strings.HasPrefix(hex, ".tmp-") {
				base = filepath.Dir(d)
			}
		}
	}
	if base == "" {
		t.Fatal("the base layer never appeared in the store")
	}
	// Let the flattener hear of it (its layer.ingested), restart it (what it remembers of the
	// wish must outlive the process), then take the layer away.
	time.Sleep(time.Second)
	flattener.stop(t, mpGracefulStop)
	flattener = startServeProcess(t, "flattener", natsURL, storeRoot, t.TempDir())
	if _, err := os.Stat(filepath.Join(repo, ".layers", ownHex[:2], ownHex)); err == nil {
		t.Fatal("the image's own layer was ingested already: the proxy did not hold it back")
	}
	if err := os.RemoveAll(base); err != nil {
		t.Fatal(err)
	}
	removed := time.Since(start)

	ok := conv.expectExit0(t)
	took := time.Since(start)
	t.Logf("base %s removed after %s; convert took %s", filepath.Base(base), removed.Round(time.Millisecond), took.Round(time.Millisecond))
	if took > 40*time.Second {
		t.Errorf("convert took %s: the lost layer was not asked for again, the conversion waited for a timeout", took.Round(time.Second))
	}
	if !ok {
		t.FailNow()
	}
	pub := filepath.Join(repo, px.Host, "apps", "gone:v1")
	for p, want := range map[string]string{"app/gone": "I am gone\n", "etc/os-release": "ID=flatbed-e2e\n"} {
		if got, err := os.ReadFile(filepath.Join(pub, p)); err != nil || string(got) != want {
			t.Errorf("%s/%s = %q, %v; want %q", pub, p, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "layerfs", "etc", "os-release")); err != nil {
		t.Errorf("the base layer is not back in the store: %v", err)
	}
	fetched := 0
	for _, l := range px.Log() {
		if strings.Contains(l, " GET ") && strings.Contains(l, "/blobs/sha256:"+filepath.Base(base)) {
			fetched++
		}
	}
	if fetched != 2 {
		t.Errorf("the base blob was fetched %d times, want 2 (once, then again after it was removed):\n%s", fetched, strings.Join(px.Log(), "\n"))
	}
	if log, err := os.ReadFile(flattener.stderr); err != nil || !strings.Contains(string(log), "requesting it again") {
		t.Errorf("the flattener's log does not say it requested the layer again (%v)", err)
	}
	if out, _ := runFlatbed(tt, 0, "verify", mpRepo, "--store-root", storeRoot); out != "" {
		t.Logf("verify: %s", strings.TrimSpace(out))
	}
}
