package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flatbed.dev/pkg/imagegen"
	n "flatbed.dev/pkg/notification"
	"flatbed.dev/pkg/store"
)

const (
	// stateDirRunBound bounds each `flatbed convert` of TestTwoConvertsShareOneStateDir, well
	// below its own --timeout (stateDirConvertTimeout): a process still running then hangs.
	stateDirRunBound       = 60 * time.Second
	stateDirConvertTimeout = "2m"
	// stateDirRefusal is how soon a process that cannot have the state directory must give up.
	stateDirRefusal = 10 * time.Second
	stateDirRounds  = 3
)

// TestTwoConvertsShareOneStateDir starts two `flatbed convert` runs at once with one
// --state-dir (as two runs with the default would) and different wishlists and stores. Each
// either converts its own images and nothing of the other's, or refuses at once, naming the
// state directory; neither hangs. Several rounds, since the collision was a race.
func TestTwoConvertsShareOneStateDir(tt *testing.T) {
	t := recordFailures(tt)
	sides := map[string][]imagegen.Named{
		"A": smallImages(t, "statedir/a", 4),
		"B": smallImages(t, "statedir/b", 4),
	}
	reg := mpPushImages(t, append(append([]imagegen.Named{}, sides["A"]...), sides["B"]...))
	wishlists := map[string]string{}
	for side, imgs := range sides {
		wishlists[side] = mpWriteWishlist(t, reg.Host, imgs)
	}
	for round := 1; round <= stateDirRounds; round++ {
		stateDir := t.TempDir()
		type run struct {
			proc         *childProcess
			store, notif string
		}
		runs := map[string]*run{}
		ctx, cancel := context.WithTimeout(context.Background(), stateDirRunBound)
		for _, side := range []string{"A", "B"} {
			dir := t.TempDir()
			r := &run{store: filepath.Join(dir, "store"), notif: filepath.Join(dir, "notifications.jsonl")}
			r.proc = startChild(t, ctx, "convert "+side, flatbedBin, "convert", wishlists[side], "--timeout", stateDirConvertTimeout,
				"-i", "--store-root", r.store, "--state-dir", stateDir, "-n", r.notif)
			runs[side] = r
		}
		refused := 0
		for side, r := range runs {
			other := "B"
			if side == "B" {
				other = "A"
			}
			<-r.proc.done
			took := time.Since(r.proc.start).Round(time.Millisecond)
			code := r.proc.cmd.ProcessState.ExitCode()
			stdout, _ := os.ReadFile(r.proc.stdout)
			stderr, _ := os.ReadFile(r.proc.stderr)
			if ctx.Err() != nil && code != 0 {
				t.Errorf("round %d, %s: still running after %s (%s): a hang", round, side, stateDirRunBound, r.proc.state())
				continue
			}
			st := store.New(filepath.Join(r.store, mpRepo))
			for _, img := range sides[other] {
				if found := storeHolds(t, st, reg.Host, img); len(found) > 0 {
					t.Errorf("round %d, %s (exit %d): its store holds %s of the other run's wishlist: %s", round, side, code, img.Ref(), strings.Join(found, ", "))
				}
			}
			if code == 0 {
				t.Logf("round %d, %s: exit 0 after %s", round, side, took)
				mpCheckPublicPaths(t, r.store, reg.Host, sides[side])
				if c := strings.Count(string(stdout), "converted "); c != len(sides[side]) {
					t.Errorf("round %d, %s: %d images reported converted, want %d:\n%s", round, side, c, len(sides[side]), stdout)
				}
				checkDuccLines(t, r.notif, n.StatusOK, "")
				continue
			}
			refused++
			t.Logf("round %d, %s: refused (exit %d) after %s: %s", round, side, code, took, strings.TrimSpace(string(stderr)))
			if took > stateDirRefusal {
				t.Errorf("round %d, %s: exit %d after %s, want success or a refusal within %s", round, side, code, took, stateDirRefusal)
			}
			if !strings.Contains(string(stderr), stateDir) {
				t.Errorf("round %d, %s: exit %d and stderr does not name the state directory %s:\n%s", round, side, code, stateDir, lastLines(string(stderr), 20))
			}
			if strings.Contains(string(stderr), "usage:") {
				t.Errorf("round %d, %s: the refusal prints usage text:\n%s", round, side, stderr)
			}
			checkDuccLines(t, r.notif, n.StatusError, stateDir)
		}
		cancel()
		if refused == len(runs) {
			t.Errorf("round %d: both runs refused the state directory; one of them must have it", round)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}
