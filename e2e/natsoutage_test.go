package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

const (
	// stageCheckBound is how soon `convert --nats` must say that a stage has no worker.
	stageCheckBound = 30 * time.Second
	// readyzBound is how soon /readyz must follow the NATS server going away.
	readyzBound = 5 * time.Second
	// metricsBound is how long /metrics may take while NATS is away.
	metricsBound = time.Second
)

// With one stage not running, `convert --nats` exits non-zero within seconds, naming the
// stage and how to start it, and submits nothing (it used to wait for its --timeout, 2 h by
// default, and then say "no result").
func TestConvertNamesTheStageWithoutWorker(tt *testing.T) {
	t := recordFailures(tt)
	natsURL, _ := startNATSServerProcess(t)
	store := t.TempDir()
	for _, s := range []string{"resolver", "ingester", "flattener", "thinpusher"} { // no notifier
		startServeProcess(t, s, natsURL, store, t.TempDir())
	}
	wl := mpWriteWishlist(t, "127.0.0.1:1", smallImages(t, "nostage/img", 2)) // never fetched
	conv := mpStartConvert(t, "convert", wl, "--nats", natsURL, "--store-root", store, "--state-dir", t.TempDir())
	code, ok := conv.wait(stageCheckBound)
	took := time.Since(conv.start).Round(time.Millisecond)
	if !ok {
		t.Fatalf("convert still waits %s after its start with the notifier not running", stageCheckBound)
	}
	stderr := readFile(t, conv.stderr)
	t.Logf("convert: exit %d after %s:\n%s", code, took, lastLines(stderr, 8))
	if code == 0 {
		t.Errorf("convert exited 0 with a stage missing")
	}
	for _, want := range []string{"notifier", "flatbed serve notifier --nats " + natsURL, "--wait-for-stages"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("convert's stderr lacks %q", want)
		}
	}
	for _, running := range []string{"resolver", "ingester", "flattener", "thinpusher"} {
		if strings.Contains(stderr, "flatbed serve "+running) {
			t.Errorf("convert names %s, which runs, as missing", running)
		}
	}
	if n := storedWishes(t, natsURL); n != 0 {
		t.Errorf("%d wish(es) submitted although convert refused to run", n)
	}
}

// storedWishes counts the wish.submitted events in the pipeline stream.
func storedWishes(t testing.TB, natsURL string) uint64 {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(events.Subject(events.WishSubmittedType)))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// SIGINT and SIGTERM to a waiting convert are an interrupt (status 130 and 143, "interrupted"),
// not a timeout ("gave up waiting after 2h0m0s").
func TestConvertInterrupted(tt *testing.T) {
	t := recordFailures(tt)
	natsURL, _ := startNATSServerProcess(t)
	store := t.TempDir()
	wl := mpWriteWishlist(t, "127.0.0.1:1", smallImages(t, "interrupt/img", 3))
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		// No stage runs: with --wait-for-stages the wishes are submitted and wait.
		conv := mpStartConvert(t, "convert "+tc.sig.String(), wl, "--nats", natsURL, "--store-root", store,
			"--state-dir", t.TempDir(), "--wait-for-stages")
		waitLog(t, conv, `"msg":"converting"`)
		if tc.sig == syscall.SIGINT {
			// While it waits it says how far it is, and where the work waits.
			line := waitLog(t, conv, `"msg":"waiting for results"`)
			for _, want := range []string{`"done":"0 of 3"`, `resolver 3 queued`, `"no_worker":"resolver"`} {
				if !strings.Contains(line, want) {
					t.Errorf("progress line lacks %s: %s", want, line)
				}
			}
		}
		if err := conv.cmd.Process.Signal(tc.sig); err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		code, ok := conv.wait(10 * time.Second)
		if !ok {
			t.Fatalf("convert still runs 10s after %s", tc.sig)
		}
		stderr := readFile(t, conv.stderr)
		t.Logf("%s: exit %d after %s: %s", tc.sig, code, time.Since(sent).Round(time.Millisecond), lastLines(stderr, 2))
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d", tc.sig, code, tc.code)
		}
		if !strings.Contains(stderr, "interrupted") || !strings.Contains(stderr, "3 image(s) unfinished") {
			t.Errorf("%s: stderr does not say interrupted, 3 image(s) unfinished:\n%s", tc.sig, lastLines(stderr, 5))
		}
		if strings.Contains(stderr, "gave up waiting") {
			t.Errorf("%s reported as a timeout:\n%s", tc.sig, lastLines(stderr, 5))
		}
	}
}

// When NATS goes away, a service's /readyz fails within seconds and recovers when the server
// is back; /metrics keeps answering at once with every gauge; the log says what happened.
func TestReadyzFollowsNATS(tt *testing.T) {
	t := recordFailures(tt)
	port, storeDir := childFreePort(t), t.TempDir()
	natsURL, server := startNATSServerAt(t, port, storeDir)
	serve := startServeProcess(t, "ingester", natsURL, t.TempDir(), t.TempDir())
	base := strings.TrimSuffix(serveMetricsURL(serve.stderr), "/metrics")
	client := &http.Client{Timeout: 3 * time.Second}
	waitMetric(t, client, base, "flatbed_consumer_pending_messages")

	if err := server.cmd.Process.Kill(); err != nil { // as a crash or a lost node would
		t.Fatal(err)
	}
	<-server.done
	killed := time.Now()
	body, took := pollReadyz(t, client, base, http.StatusServiceUnavailable, 3*readyzBound)
	t.Logf("/readyz failed %s after the server was killed: %s", took, strings.TrimSpace(body))
	if took > readyzBound {
		t.Errorf("/readyz still answered ready %s after the server was killed, want at most %s", took, readyzBound)
	}
	if !strings.Contains(body, "NATS") {
		t.Errorf("/readyz body does not say NATS is the matter: %q", body)
	}
	for range 3 {
		start := time.Now()
		metrics := get(t, client, base+"/metrics")
		d := time.Since(start)
		if d > metricsBound {
			t.Errorf("/metrics took %s with NATS away, want at most %s", d, metricsBound)
		}
		for _, name := range []string{"flatbed_consumer_pending_messages", "flatbed_consumer_ack_pending_messages", "flatbed_consumer_info_age_seconds", "go_goroutines"} {
			if !strings.Contains(metrics, name) {
				t.Errorf("/metrics lacks %s with NATS away", name)
			}
		}
		time.Sleep(time.Second)
	}
	t.Logf("NATS away for %s; /metrics answered within %s each time", time.Since(killed).Round(time.Millisecond), metricsBound)

	restarted := time.Now()
	startNATSServerAt(t, port, storeDir)
	body, _ = pollReadyz(t, client, base, http.StatusOK, 30*time.Second)
	t.Logf("/readyz ready again %s after the server was started again: %s", time.Since(restarted).Round(time.Millisecond), strings.TrimSpace(body))
	log := readFile(t, serve.stderr)
	for _, want := range []string{"NATS connection lost", "NATS connection restored"} {
		if !strings.Contains(log, want) {
			t.Errorf("the service's log lacks %q", want)
		}
	}
	serve.stop(t, mpGracefulStop)
}

// startNATSServerAt runs natsServerBin with JetStream on port with its store in dir, and
// waits until it answers JetStream requests.
func startNATSServerAt(t testing.TB, port int, dir string) (string, *childProcess) {
	t.Helper()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	p := startChild(t, context.Background(), "nats-server", natsServerBin, "-js", "-sd", dir, "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !p.exited(); time.Sleep(50 * time.Millisecond) {
		if last = natsServerReady(url); last == nil {
			return url, p
		}
	}
	t.Fatalf("nats-server on port %d not ready: %v (%s)\n%s", port, last, p.state(), childLogTail(p.stderr))
	return "", nil
}

// pollReadyz polls /readyz until it answers want and returns the body and how long it took.
func pollReadyz(t testing.TB, client *http.Client, base string, want int, bound time.Duration) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return string(b), time.Since(start)
			}
		}
		if time.Since(start) > bound {
			t.Fatalf("/readyz did not answer %d within %s (last: %v)", want, bound, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitMetric(t testing.TB, client *http.Client, base, name string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(get(t, client, base+"/metrics"), name); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics has no %s", name)
		}
	}
}

func get(t testing.TB, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitLog waits until the process's stderr holds s and returns the first line holding it.
func waitLog(t testing.TB, p *childProcess, s string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if line := lineFor(readFile(t, p.stderr), "", s); line != "" {
			return line
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("%s never logged %s: %s\n%s", p.name, s, p.state(), childLogTail(p.stderr))
		}
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// An old server (Debian 12's nats-server 2.9) is refused by every process with a message
// naming both versions, instead of some stages running and the notifier failing to create
// its consumer. Set FLATBED_OLD_NATS_SERVER to its binary (apt-get install nats-server puts
// it at /usr/sbin/nats-server); without one the version check's unit test covers it.
func TestOldNATSServerRefused(tt *testing.T) {
	t := recordFailures(tt)
	bin := os.Getenv("FLATBED_OLD_NATS_SERVER")
	if bin == "" {
		bin = "/usr/sbin/nats-server"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no old nats-server (%v); set FLATBED_OLD_NATS_SERVER", err)
	}
	port := childFreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	server := startChild(t, context.Background(), "old nats-server", bin, "-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", fmt.Sprint(port))
	for deadline := time.Now().Add(20 * time.Second); natsServerReady(url) != nil; time.Sleep(50 * time.Millisecond) {
		if server.exited() || time.Now().After(deadline) {
			t.Fatalf("old nats-server not ready: %s\n%s", server.state(), childLogTail(server.stderr))
		}
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	version := nc.ConnectedServerVersion()
	nc.Close()
	if !strings.HasPrefix(version, "2.9.") {
		t.Skipf("%s is nats-server %s, not 2.9", bin, version)
	}
	wl := mpWriteWishlist(t, "127.0.0.1:1", smallImages(t, "oldnats/img", 1))
	for _, args := range [][]string{
		{"serve", "notifier", "--nats", url, "--state-dir", t.TempDir(), "--metrics-addr", "127.0.0.1:0"},
		{"serve", "resolver", "--nats", url, "--state-dir", t.TempDir(), "--metrics-addr", "127.0.0.1:0"},
		{"convert", wl, "--nats", url, "--state-dir", t.TempDir(), "--store-root", t.TempDir()},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		p := startChild(t, ctx, args[0]+" "+args[1], flatbedBin, args...)
		code, ok := p.wait(30 * time.Second)
		cancel()
		if !ok {
			t.Errorf("flatbed %s still runs against nats-server %s", strings.Join(args[:2], " "), version)
			continue
		}
		stderr := readFile(t, p.stderr)
		t.Logf("flatbed %s: exit %d: %s", strings.Join(args[:2], " "), code, lastLines(strings.TrimSpace(stderr), 1))
		if code == 0 {
			t.Errorf("flatbed %s: exit 0 against nats-server %s", strings.Join(args[:2], " "), version)
		}
		for _, want := range []string{version, "2.10.0 or newer"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("flatbed %s: stderr lacks %q", strings.Join(args[:2], " "), want)
			}
		}
	}
}

// The embedded server sizes its store to the state directory's file system: a run with the
// state directory on a 200 MB file system converts (it used to ask for an 8 GiB stream and
// stop with "insufficient storage resources available").
func TestEmbeddedConvertOnSmallFileSystem(tt *testing.T) {
	t := recordFailures(tt)
	if os.Geteuid() != 0 {
		t.Skip("mounting a 200 MB tmpfs needs root (CI runs as root)")
	}
	state := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", state, "tmpfs", 0, "size=200m,mode=0700"); err != nil {
		t.Fatalf("mounting a 200 MB tmpfs on %s: %v", state, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(state, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", state, err)
		}
	})
	imgs := smallImages(t, "smallfs/img", 3)
	reg := mpPushImages(t, imgs)
	wl := mpWriteWishlist(t, reg.Host, imgs)
	store := t.TempDir()
	start := time.Now()
	stdout, stderr := runFlatbed(tt, 0, "convert", wl, "-i", "--store-root", store, "--state-dir", state)
	t.Logf("converted %d images in %s with the state on a 200 MB tmpfs: %s", len(imgs), time.Since(start).Round(time.Millisecond), lineFor(stderr, "", "embedded NATS storage"))
	if c := strings.Count(stdout, "converted "); c != len(imgs) {
		t.Errorf("%d image(s) converted, want %d:\n%s\n%s", c, len(imgs), stdout, lastLines(stderr, 20))
	}
	mpCheckPublicPaths(t, store, reg.Host, imgs)
	// And again, with the store it left there: a restart finds its streams within the limit.
	stdout, stderr = runFlatbed(tt, 0, "convert", wl, "-i", "--store-root", store, "--state-dir", state)
	if c := strings.Count(stdout, "already converted "); c != len(imgs) {
		t.Errorf("second run: %d image(s) already converted, want %d:\n%s\n%s", c, len(imgs), stdout, lastLines(stderr, 20))
	}
	// A limit that cannot fit is refused, naming it and the room there is.
	_, stderr = runFlatbed(tt, 1, "convert", wl, "-i", "--store-root", store, "--state-dir", state, "--stream-max-bytes", fmt.Sprint(int64(1)<<30))
	if !strings.Contains(stderr, "--stream-max-bytes") || !strings.Contains(stderr, state) {
		t.Errorf("a stream limit over the file system's room: stderr does not name the flag and the state directory:\n%s", lastLines(stderr, 5))
	}
}
