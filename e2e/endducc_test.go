package e2e

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	n "flatbed.dev/pkg/notification"
)

// readNotifications parses every line of a notification file.
func readNotifications(t testing.TB, path string) []n.Line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("notification file: %v", err)
	}
	defer f.Close()
	var lines []n.Line
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l, err := n.Parse(sc.Bytes())
		if err != nil {
			t.Fatalf("%s line %d: %v", path, len(lines)+1, err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return lines
}

// checkDuccLines asserts one start_ducc and one end_ducc line, from one process, the end
// line last with status want; with StatusError it carries an error containing errWant.
func checkDuccLines(t testing.TB, path, want, errWant string) {
	t.Helper()
	lines := readNotifications(t, path)
	var starts, ends []n.Line
	for _, l := range lines {
		switch l[n.FieldAction] {
		case n.ActionStartDucc:
			starts = append(starts, l)
		case n.ActionEndDucc:
			ends = append(ends, l)
		}
	}
	if len(starts) != 1 || len(ends) != 1 {
		t.Errorf("%s: %d start_ducc and %d end_ducc lines, want one each", path, len(starts), len(ends))
		return
	}
	start, end := starts[0], ends[0]
	if lines[len(lines)-1][n.FieldAction] != n.ActionEndDucc {
		t.Errorf("%s: the last line is %v, want end_ducc", path, lines[len(lines)-1])
	}
	if start[n.FieldPID] == "" || start[n.FieldPID] != end[n.FieldPID] {
		t.Errorf("%s: start_ducc pid %q, end_ducc pid %q: want the same process", path, start[n.FieldPID], end[n.FieldPID])
	}
	if end[n.FieldElapsed] == "" {
		t.Errorf("%s: end_ducc has no %s: %v", path, n.FieldElapsed, end)
	}
	if got := end[n.FieldStatus]; got != want {
		t.Errorf("%s: end_ducc status %q, want %q: %v", path, got, want, end)
	}
	switch msg := end[n.FieldError]; {
	case want == n.StatusOK && msg != "":
		t.Errorf("%s: end_ducc of a clean run has error %q", path, msg)
	case want == n.StatusError && !strings.Contains(msg, errWant):
		t.Errorf("%s: end_ducc error %q, want it to contain %q", path, msg, errWant)
	}
}

// TestEndDuccLineSaysHowTheRunEnded: the end_ducc line of a run with a failing image (a
// missing tag) says status error with the reason, the one of a clean run says ok.
func TestEndDuccLineSaysHowTheRunEnded(t *testing.T) {
	reg := harness.StartRegistry(t)
	demo := imagegen.Demo()
	if err := imagegen.Push(context.Background(), reg.Host, demo); err != nil {
		t.Fatal(err)
	}
	storeRoot, dir := t.TempDir(), t.TempDir()
	clean := mpWriteWishlist(t, reg.Host, demo)
	failing := mpWriteWishlist(t, reg.Host, append(slices.Clone(demo), imagegen.Named{Name: imagegen.DemoHello, Tag: "no-such-tag"}))

	t.Run("clean run", func(t *testing.T) {
		notif := filepath.Join(dir, "clean.jsonl")
		runFlatbed(t, 0, "convert", clean, "-i", "--store-root", storeRoot, "--state-dir", filepath.Join(dir, "state-clean"), "-n", notif)
		checkDuccLines(t, notif, n.StatusOK, "")
	})
	t.Run("a missing tag", func(t *testing.T) {
		notif := filepath.Join(dir, "failing.jsonl")
		out, _ := runFlatbed(t, 1, "convert", failing, "-i", "--store-root", storeRoot, "--state-dir", filepath.Join(dir, "state-failing"), "-n", notif)
		if !strings.Contains(out, "FAILED") || !strings.Contains(out, "no-such-tag") {
			t.Errorf("output does not report the missing tag:\n%s", out)
		}
		checkDuccLines(t, notif, n.StatusError, "1 of 4 image(s) failed")
	})
}
