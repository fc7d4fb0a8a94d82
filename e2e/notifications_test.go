package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	n "flatbed.dev/pkg/notification"
	"flatbed.dev/pkg/store"
)

const (
	notifImages = 50
	// notifRunsEnv sets how many cold runs TestNotificationLinesOfAColdRun makes.
	notifRunsEnv     = "FLATBED_E2E_NOTIFICATION_RUNS"
	notifRunsDefault = 20
)

// TestNotificationLinesOfAColdRun converts 50 small images into a fresh store with a fresh
// state directory, several times, and checks the notification file of every run holds what
// DUCC writes: for every image a start_flat_conversion/end_flat_conversion pair (one id,
// status ok) and a publish_flat_image line, a start/end_layer_conversion pair for every
// layer unpacked (every layer: they are all distinct and the store is empty), and one
// start_ducc/end_ducc.
func TestNotificationLinesOfAColdRun(t *testing.T) {
	runs := notifRunsDefault
	if v := os.Getenv(notifRunsEnv); v != "" {
		var err error
		if runs, err = strconv.Atoi(v); err != nil || runs < 1 {
			t.Fatalf("%s=%q: want a positive number of runs", notifRunsEnv, v)
		}
	}
	imgs := smallImages(t, "notif/img", notifImages)
	reg := mpPushImages(t, imgs)
	wishlist := mpWriteWishlist(t, reg.Host, imgs)

	type imageFacts struct {
		name   string   // as the image field names it: registry/repository:tag
		layers []string // hex digests
	}
	facts := make([]imageFacts, 0, len(imgs))
	for _, img := range imgs {
		_, layers := imageDigests(t, img.Image)
		for i, d := range layers {
			layers[i] = store.Hex(d)
		}
		facts = append(facts, imageFacts{name: reg.Host + "/" + img.Ref(), layers: layers})
	}

	totalLost := 0
	for run := 1; run <= runs; run++ {
		dir := t.TempDir()
		storeRoot, notif := filepath.Join(dir, "store"), filepath.Join(dir, "notifications.jsonl")
		started := time.Now()
		runFlatbed(t, 0, "convert", wishlist, "-i", "--store-root", storeRoot, "--state-dir", filepath.Join(dir, "state"), "-n", notif)
		took := time.Since(started)
		checkDuccLines(t, notif, n.StatusOK, "")

		lines := readNotifications(t, notif)
		byAction := map[string][]n.Line{}
		for _, l := range lines {
			byAction[l[n.FieldAction]] = append(byAction[l[n.FieldAction]], l)
		}
		st := store.New(filepath.Join(storeRoot, mpRepo))
		lost := map[string][]string{} // image -> what its lines lack
		for i, f := range facts {
			match := func(l n.Line) bool { return l[n.FieldImage] == f.name }
			if p := pairProblem(byAction, n.ActionStartFlatConversion, n.ActionEndFlatConversion, match); p != "" {
				lost[f.name] = append(lost[f.name], "flat conversion: "+p)
			}
			if c := count(byAction[n.ActionPublishFlatImage], match); c != 1 {
				lost[f.name] = append(lost[f.name], fmt.Sprintf("%d publish_flat_image lines, want 1", c))
			}
			for _, hex := range f.layers {
				if !st.HasLayer("sha256:" + hex) {
					t.Errorf("run %d: %s: layer %s is not in the store", run, imgs[i].Ref(), hex)
				}
				layer := func(l n.Line) bool { return l[n.FieldLayer] == hex }
				if p := pairProblem(byAction, n.ActionStartLayerConversion, n.ActionEndLayerConversion, layer); p != "" {
					lost[f.name] = append(lost[f.name], "layer "+hex[:12]+": "+p)
				}
			}
		}
		totalLost += len(lost)
		t.Logf("run %d: %s, %d notification lines, %d of %d images lost lines", run, took.Round(time.Millisecond), len(lines), len(lost), len(facts))
		if len(lost) > 0 {
			var b strings.Builder
			names := make([]string, 0, len(lost))
			for name := range lost {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				fmt.Fprintf(&b, "\n  %s: %s", name, strings.Join(lost[name], "; "))
			}
			t.Errorf("run %d: the notification file lacks lines of %d of %d images:%s", run, len(lost), len(facts), b.String())
		}
	}
	t.Logf("%d cold run(s) of %d images: %d image(s) in all lost lines", runs, len(facts), totalLost)
}

// pairProblem checks that exactly one start line and one end line of byAction match, with
// the same id and the end's status ok; it returns what is wrong, or "".
func pairProblem(byAction map[string][]n.Line, start, end string, match func(n.Line) bool) string {
	var starts, ends []n.Line
	for _, l := range byAction[start] {
		if match(l) {
			starts = append(starts, l)
		}
	}
	for _, l := range byAction[end] {
		if match(l) {
			ends = append(ends, l)
		}
	}
	switch {
	case len(starts) != 1 || len(ends) != 1:
		return fmt.Sprintf("%d %s and %d %s lines, want one each", len(starts), start, len(ends), end)
	case starts[0][n.FieldID] == "" || starts[0][n.FieldID] != ends[0][n.FieldID]:
		return fmt.Sprintf("%s id %q, %s id %q: want one non-empty id", start, starts[0][n.FieldID], end, ends[0][n.FieldID])
	case ends[0][n.FieldStatus] != n.StatusOK:
		return fmt.Sprintf("%s status %q (error %q), want %q", end, ends[0][n.FieldStatus], ends[0][n.FieldError], n.StatusOK)
	}
	return ""
}

func count(lines []n.Line, match func(n.Line) bool) int {
	c := 0
	for _, l := range lines {
		if match(l) {
			c++
		}
	}
	return c
}
