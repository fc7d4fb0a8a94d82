package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flatbed.dev/e2e/harness"
	n "flatbed.dev/pkg/notification"
	"flatbed.dev/pkg/store"
)

// waitPath waits until path exists (a public path is a symlink: Lstat).
func waitPath(t testing.TB, p *childProcess, path string, bound time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(bound); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Lstat(path); err == nil {
			return
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s (%s)\n%s", path, bound, p.state(), childLogTail(p.stderr))
		}
	}
}

// passesDone counts the passes loop has finished, from its log.
func passesDone(t testing.TB, p *childProcess) int {
	t.Helper()
	return strings.Count(readFile(t, p.stderr), `"msg":"pass done"`)
}

// waitPasses waits until loop has finished more passes than after.
func waitPasses(t testing.TB, p *childProcess, after, more int) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); passesDone(t, p) < after+more; time.Sleep(100 * time.Millisecond) {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("loop did not finish %d more passes after %d (%s)\n%s", more, after, p.state(), childLogTail(p.stderr))
		}
	}
}

// TestLoop runs `flatbed loop --interval 1s` as a child process. Its first pass converts
// what a wildcard matches and an image named alone; a matching tag pushed later is
// converted by a later pass; the image removed from the wishlist is reported once (stdout,
// log, notification line) and not converted again, though its public path was taken away; a
// wishlist that cannot be parsed for a while is reported and the last good one kept (a tag
// pushed meanwhile is converted); SIGTERM ends loop with status 0.
func TestLoop(tt *testing.T) {
	t := recordFailures(tt)
	reg := harness.StartRegistry(t)
	imgs := smallImages(t, "loop", 3)
	pushTags(t, reg, "testbed/many", []string{"t01", "t02", "x1"}, imgs[:2])
	pushTags(t, reg, "other/alone", []string{"1"}, imgs[2:])
	wildcard := "http://" + reg.Host + "/testbed/many:t*"
	alone := "http://" + reg.Host + "/other/alone:1"
	head := "version: 1\nuser: e2e\ncvmfs_repo: '" + mpRepo + "'\ninput:\n  - '" + wildcard + "'\n"
	wl := filepath.Join(t.TempDir(), "wishlist.yaml")
	if err := os.WriteFile(wl, []byte(head+"  - '"+alone+"'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	storeRoot, notifications := t.TempDir(), filepath.Join(t.TempDir(), "ducc.jsonl")
	st := store.New(filepath.Join(storeRoot, mpRepo))
	public := func(ref string) string { return st.PublicPath(reg.Host + "/" + ref) }

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	p := startChild(t, ctx, "loop", flatbedBin, "loop", wl, "--interval", "1s", "-i",
		"--store-root", storeRoot, "--state-dir", t.TempDir(), "-n", notifications)
	for _, ref := range []string{"testbed/many:t01", "testbed/many:t02", "other/alone:1"} {
		waitPath(t, p, public(ref), 60*time.Second)
	}
	t.Logf("first pass converted 3 images in %s", time.Since(start).Round(time.Millisecond))
	if _, err := os.Lstat(public("testbed/many:x1")); err == nil {
		t.Errorf("testbed/many:x1, which the wildcard does not match, was converted")
	}

	// A matching tag pushed later is converted by a later pass.
	pushed := time.Now()
	pushTags(t, reg, "testbed/many", []string{"t03"}, imgs[:1])
	waitPath(t, p, public("testbed/many:t03"), 60*time.Second)
	t.Logf("a tag pushed later was converted %s after its push", time.Since(pushed).Round(time.Millisecond))

	// The image removed from the wishlist is reported, and not converted again: its public
	// path, taken away by hand, stays away (a wish for it would convert it again).
	if err := os.WriteFile(wl, []byte(head), 0o644); err != nil {
		t.Fatal(err)
	}
	line := waitLog(t, p, "removed from the wishlist")
	if !strings.Contains(line, alone) {
		t.Errorf("removal log line does not name %s: %s", alone, line)
	}
	if err := os.Remove(public("other/alone:1")); err != nil {
		t.Fatal(err)
	}
	waitPasses(t, p, passesDone(t, p), 2)
	if _, err := os.Lstat(public("other/alone:1")); err == nil {
		t.Errorf("other/alone:1 was converted again after it was removed from the wishlist")
	}
	if got := strings.Count(readFile(t, p.stdout), "removed           "+alone+" (input "+alone+")"); got != 1 {
		t.Errorf("stdout reports the removal %d times, want once:\n%s", got, readFile(t, p.stdout))
	}

	// A wishlist that cannot be parsed: reported, the last good one is used meanwhile.
	if err := os.WriteFile(wl, []byte("version: [1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "cannot use the wishlist for this pass")
	pushTags(t, reg, "testbed/many", []string{"t04"}, imgs[1:2])
	waitPath(t, p, public("testbed/many:t04"), 60*time.Second)
	if err := os.WriteFile(wl, []byte(head), 0o644); err != nil {
		t.Fatal(err)
	}

	p.stop(t, 90*time.Second)
	if got := strings.Count(readFile(t, p.stdout), "removed "); got != 1 {
		t.Errorf("%d removals reported over the run, want 1 (an unparsable wishlist removes nothing):\n%s", got, readFile(t, p.stdout))
	}
	var removed []n.Line
	for _, l := range readNotifications(t, notifications) {
		if l[n.FieldAction] == "removed_from_wishlist" {
			removed = append(removed, l)
		}
	}
	if len(removed) != 1 || removed[0][n.FieldImage] != reg.Host+"/other/alone:1" || removed[0][n.FieldImageRequest] != alone {
		t.Errorf("removed_from_wishlist notification lines: %v, want one for %s", removed, alone)
	}
	t.Logf("loop test took %s", time.Since(start).Round(time.Millisecond))
}

// TestLoopStopsMidPass: loop --nats publishes its wishes to a NATS server on which no stage
// runs yet (--wait-for-stages), so its first pass waits; SIGTERM then ends it with status 0,
// saying the pass was interrupted and its wishes stay queued.
func TestLoopStopsMidPass(tt *testing.T) {
	t := recordFailures(tt)
	reg := harness.StartRegistry(t)
	pushTags(t, reg, "testbed/many", []string{"t01"}, smallImages(t, "mid", 1))
	wl := filepath.Join(t.TempDir(), "wishlist.yaml")
	if err := os.WriteFile(wl, []byte("version: 1\ncvmfs_repo: '"+mpRepo+"'\ninput: ['http://"+reg.Host+"/testbed/many:t*']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	natsURL, _ := startNATSServerProcess(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := startChild(t, ctx, "loop", flatbedBin, "loop", wl, "--nats", natsURL, "--wait-for-stages", "--interval", "1s", "-i",
		"--store-root", t.TempDir())
	waitLog(t, p, `"msg":"pass",`)
	time.Sleep(500 * time.Millisecond) // the wish is published and waited for
	p.stop(t, 30*time.Second)
	for _, s := range []string{"pass interrupted; the wishes not done stay queued", `"msg":"loop stopped","by":"SIGTERM"`} {
		if !strings.Contains(readFile(t, p.stderr), s) {
			t.Errorf("loop's log lacks %s", s)
		}
	}
	if strings.Contains(readFile(t, p.stderr), `"msg":"pass done"`) {
		t.Errorf("the pass finished although no stage ran")
	}
}
