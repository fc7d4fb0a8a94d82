package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"flatbed.dev/pkg/imagegen"
)

// noLockFiles fails for every *.lock file in a store: locks are taken on directories that
// are there anyway, never published as files of their own. The podman store's images.lock
// and layers.lock are podman's, which it opens in every image store and cannot create on a
// read-only one.
func noLockFiles(t testing.TB, store string) {
	t.Helper()
	_ = filepath.WalkDir(store, func(p string, d os.DirEntry, err error) error {
		podmans := strings.HasSuffix(p, "/podmanStore/overlay-images/images.lock") || strings.HasSuffix(p, "/podmanStore/overlay-layers/layers.lock")
		if err == nil && strings.HasSuffix(d.Name(), ".lock") && !podmans {
			t.Errorf("lock file in the store: %s", p)
		}
		return nil
	})
}

// resultLine is the line `flatbed convert` prints for image (e.g. "converted  IMAGE -> PATH").
func resultLine(t testing.TB, stdout, image string) string {
	t.Helper()
	for _, l := range strings.Split(stdout, "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.Contains(l, " "+image+" ") {
			return l
		}
	}
	t.Fatalf("no result line for %s in:\n%s", image, stdout)
	return ""
}

// `make demo` on a machine without docker-registry: the demo serves its images from an
// in-process registry (it once panicked there) and converts them; it needs nothing on PATH.
func TestDemoWithoutDockerRegistry(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty-path")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flatbedBin, "demo", "--store-root", store, "--state-dir", filepath.Join(dir, "state"))
	cmd.Env = []string{"PATH=" + empty, "HOME=" + dir}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("flatbed demo with PATH=%s: %v\nstdout:\n%s\nstderr (tail):\n%s", empty, err, stdout.String(), lastLines(stderr.String(), 40))
	}
	if !strings.Contains(stderr.String(), "using an in-process registry") {
		t.Errorf("the demo did not say it uses its in-process registry:\n%s", lastLines(stderr.String(), 40))
	}
	if strings.Contains(stderr.String(), "panic") {
		t.Errorf("a panic was logged:\n%s", lastLines(stderr.String(), 40))
	}
	m := regexp.MustCompile(`registry: +http://(\S+) `).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no registry line in:\n%s", stdout.String())
	}
	host := m[1]
	demo := imagegen.Demo()
	for _, img := range demo {
		image := "http://" + host + "/" + img.Ref()
		if l := resultLine(t, stdout.String(), image); !strings.HasPrefix(l, "converted ") && !strings.HasPrefix(l, "already converted ") {
			t.Errorf("%s: %s", image, l)
		}
	}
	msg := filepath.Join(store, "demo.flatbed.local", host, imagegen.DemoHello+":1.0", "app", "message.txt")
	if b, err := os.ReadFile(msg); err != nil || string(b) != "Hello from flatbed demo 1.0!\n" {
		t.Errorf("%s: %q, %v", msg, b, err)
	}
	noLockFiles(t, store)
}

// -g (--convert-again) converts an image that is already converted again: its flat tree is
// built anew, restoring what was removed from it, and the output says "converted". Without
// -g, and with --trust-store (no walk of the tree against its recorded tally, which would
// find the file missing and mend it: TestEachDamageFoundByVerifyAndMendedTwice), the image is
// "already converted" and the tree is left as it is.
func TestConvertAgainRestoresTheTree(t *testing.T) {
	imgs := imagegen.Demo()[:1]
	reg := mpPushImages(t, imgs)
	wl := mpWriteWishlist(t, reg.Host, imgs)
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	args := []string{"convert", wl, "-i", "--store-root", store, "--state-dir", filepath.Join(dir, "state")}
	image := "http://" + reg.Host + "/" + imgs[0].Ref()
	msg := filepath.Join(store, mpRepo, reg.Host, imgs[0].Ref(), "app", "message.txt")

	out, _ := runFlatbed(t, 0, args...)
	if l := resultLine(t, out, image); !strings.HasPrefix(l, "converted ") {
		t.Fatalf("first run: %s", l)
	}
	want, err := os.ReadFile(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(msg); err != nil {
		t.Fatal(err)
	}

	out, _ = runFlatbed(t, 0, append(args, "--trust-store")...)
	if l := resultLine(t, out, image); !strings.HasPrefix(l, "already converted ") {
		t.Errorf("without -g: %s, want already converted", l)
	}
	if _, err := os.Lstat(msg); err == nil {
		t.Fatal("without -g the tree was changed")
	}

	out, _ = runFlatbed(t, 0, append(args, "-g", "--trust-store")...)
	if l := resultLine(t, out, image); !strings.HasPrefix(l, "converted ") {
		t.Errorf("with -g: %s, want converted", l)
	}
	if got, err := os.ReadFile(msg); err != nil || !bytes.Equal(got, want) {
		t.Errorf("with -g: %s = %q, %v; want %q restored", msg, got, err, want)
	}
	noLockFiles(t, store)
}

// `flatbed serve --nats URL` started before its NATS server waits for it, logging each
// wait, and serves once it is up; with no server within --nats-wait it fails naming the URL.
func TestServeWaitsForNATS(t *testing.T) {
	dir := t.TempDir()
	port := childFreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	serve := startChild(t, context.Background(), "serve before its NATS server", flatbedBin, "serve", "resolver", "--nats", url, "--nats-wait", "2m",
		"--store-root", filepath.Join(dir, "store"), "--state-dir", filepath.Join(dir, "state"), "--metrics-addr", "127.0.0.1:0")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(serve.stderr)
		if strings.Count(string(b), "NATS server not reachable yet; waiting") >= 2 && strings.Contains(string(b), url) {
			break
		}
		if serve.exited() || time.Now().After(deadline) {
			t.Fatalf("serve did not log that it waits for %s: %s\n%s", url, serve.state(), childLogTail(serve.stderr))
		}
	}
	startChild(t, context.Background(), "nats-server, late", natsServerBin, "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	waitServing(t, serve)
	serve.stop(t, mpGracefulStop)

	closed := fmt.Sprintf("nats://127.0.0.1:%d", childFreePort(t))
	start := time.Now()
	_, stderr := runFlatbed(t, 1, "serve", "resolver", "--nats", closed, "--nats-wait", "2s",
		"--store-root", filepath.Join(dir, "store"), "--state-dir", filepath.Join(dir, "state2"))
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("gave up after %s, want about --nats-wait 2s", took)
	}
	for _, want := range []string{"no NATS server answered at " + closed + " within 2s", "start it first"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, lastLines(stderr, 20))
		}
	}
	if strings.Contains(stderr, "usage:") {
		t.Errorf("a runtime failure printed the usage text:\n%s", lastLines(stderr, 20))
	}
}

// A NATS server that refuses what flatbed asks (here: it runs without JetStream) is a
// runtime failure: status 1, a message saying what to do, no usage text.
func TestNATSRefusalIsNotAUsageError(t *testing.T) {
	port := childFreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	startChild(t, context.Background(), "nats-server without JetStream", natsServerBin, "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	dir := t.TempDir()
	wl := filepath.Join(dir, "wishlist.yaml")
	if err := os.WriteFile(wl, []byte("version: 1\ncvmfs_repo: 'r.example.org'\ninput: ['http://127.0.0.1:1/a:1']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"convert", wl, "--nats", url},
		{"serve", "resolver", "--nats", url},
	} {
		args = append(args, "--store-root", filepath.Join(dir, "store"), "--state-dir", filepath.Join(dir, "state"), "--nats-wait", "20s")
		_, stderr := runFlatbed(t, 1, args...)
		if !strings.Contains(stderr, "no JetStream answered") || !strings.Contains(stderr, "start it with -js") {
			t.Errorf("%s: stderr does not say JetStream is off and what to do:\n%s", args[0], lastLines(stderr, 20))
		}
		if strings.Contains(stderr, "usage:") {
			t.Errorf("%s: a runtime failure printed the usage text:\n%s", args[0], lastLines(stderr, 20))
		}
	}
}
