package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"flatbed.dev/e2e/faultproxy"
	"flatbed.dev/pkg/imagegen"
)

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// An interactive convert (run under a pseudo-terminal by script(1)) draws a bar per image
// with its bytes and a bar per layer while it is fetched, then says done; the same convert
// with its output in files prints plain log lines and no bars.
func TestConvertProgressOnATerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script(1) (util-linux) runs convert under a pseudo-terminal: %v", err)
	}
	// Two images with a layer of 192 KiB of random bytes each, served slowly (16 KiB every
	// 50 ms), so that each layer is seen on its way.
	var imgs []imagegen.Named
	for i := range 2 {
		payload := make([]byte, 192<<10)
		_, _ = rand.Read(payload)
		l, err := tarLayer(fmt.Sprintf("tty/img%d/blob.bin", i), string(payload))
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(empty.Image, l)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := img.ConfigFile()
		cfg = cfg.DeepCopy()
		cfg.OS, cfg.Architecture = "linux", "amd64"
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, imagegen.Named{Name: fmt.Sprintf("tty/img%d", i), Tag: "1", Image: img})
	}
	reg := mpPushImages(t, imgs)
	px, err := faultproxy.Start(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	px.Add(faultproxy.Rule{Method: "GET", Path: `/blobs/sha256:`, Fault: faultproxy.Slow(0, 16<<10, 50*time.Millisecond)})
	wl := mpWriteWishlist(t, px.Host, imgs)

	args := []string{flatbedBin, "convert", wl, "-i", "--store-root", t.TempDir(), "--state-dir", t.TempDir(), "--timeout", "2m"}
	var quoted []string
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The pseudo-terminal gets a size, as a terminal window has one.
	cmd := exec.CommandContext(ctx, script, "-qfec", "stty cols 160 rows 40; "+strings.Join(quoted, " "), "/dev/null")
	cmd.Env = append(cmd.Environ(), "TERM=xterm-256color", "COLUMNS=160", "LINES=40")
	var tty bytes.Buffer
	cmd.Stdout, cmd.Stderr = &tty, &tty
	if err := cmd.Run(); err != nil {
		t.Fatalf("convert under a pseudo-terminal: %v\n%s", err, tty.String())
	}
	out := tty.String()
	plain := regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]").ReplaceAllString(out, "")
	for _, img := range imgs {
		name := "http://" + px.Host + "/" + img.Ref()
		if !regexp.MustCompile(regexp.QuoteMeta(name) + `\s.*\d+(\.\d)? ?KiB / \d+(\.\d)? ?KiB`).MatchString(plain) {
			t.Errorf("no bar with bytes for %s", name)
		}
		if !regexp.MustCompile(regexp.QuoteMeta(name) + `\s.*done`).MatchString(plain) {
			t.Errorf("the bar of %s does not end done", name)
		}
		if !strings.Contains(plain, "converted         "+name) {
			t.Errorf("no result line for %s", name)
		}
		layers, _ := img.Image.Layers()
		d, _ := layers[0].Digest()
		short := strings.TrimPrefix(d.String(), "sha256:")[:12]
		if !regexp.MustCompile(`layer ` + short + `\s.*\d+(\.\d)? ?KiB / 19[0-9](\.\d)? ?KiB`).MatchString(plain) {
			t.Errorf("no bar for layer %s of %s on its way", short, name)
		}
	}
	if !strings.Contains(out, "\x1b[") {
		t.Error("no terminal control sequences: the bars were not drawn")
	}
	if t.Failed() {
		t.Logf("terminal output:\n%s", plain)
	}

	// Not a terminal: plain log lines (JSON), no bars.
	stdout, stderr := runFlatbed(t, 0, "convert", wl, "-i", "--store-root", t.TempDir(), "--state-dir", t.TempDir(), "--timeout", "2m")
	for _, s := range []string{stdout, stderr} {
		if strings.Contains(s, "KiB /") || strings.Contains(s, "\x1b[") {
			t.Errorf("bars or control sequences without a terminal:\n%s", s)
		}
	}
	if !strings.Contains(stderr, `"msg":"converting"`) {
		t.Errorf("no JSON log lines without a terminal:\n%s", lastLines(stderr, 20))
	}
}
