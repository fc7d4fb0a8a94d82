package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events/porttest"
)

// How much of each log file is printed when a test fails: the last lines, each cut short.
const (
	childLogTailLines = 40
	childLogLineMax   = 600
)

// childProcess is one child process of a test, its stdout and stderr captured to files in a
// test temp dir. It is killed on t.Cleanup if still running, and its logs are printed
// when the test failed.
type childProcess struct {
	name   string
	cmd    *exec.Cmd
	stdout string // file
	stderr string // file
	start  time.Time
	done   chan struct{} // closed when the process has exited and been reaped
	err    error         // cmd.Wait's error, valid after done
}

var childSeq atomic.Int64

// startChild starts bin with args. ctx bounds its run time (exec.CommandContext: the
// process is killed when ctx ends); use context.Background() for servers the test stops.
func startChild(t testing.TB, ctx context.Context, name, bin string, args ...string) *childProcess {
	t.Helper()
	dir := filepath.Join(t.TempDir(), fmt.Sprintf("proc-%02d-%s", childSeq.Add(1), childFileName(name)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &childProcess{name: name, stdout: filepath.Join(dir, "stdout.log"), stderr: filepath.Join(dir, "stderr.log"), done: make(chan struct{})}
	outF, err := os.Create(p.stdout)
	if err != nil {
		t.Fatal(err)
	}
	errF, err := os.Create(p.stderr)
	if err != nil {
		outF.Close()
		t.Fatal(err)
	}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = outF, errF
	p.cmd.WaitDelay = 5 * time.Second
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		outF.Close()
		errF.Close()
		t.Fatalf("starting %s (%s %q): %v", name, bin, args, err)
	}
	t.Logf("started %s (pid %d): %s %s", name, p.cmd.Process.Pid, filepath.Base(bin), strings.Join(args, " "))
	go func() {
		p.err = p.cmd.Wait()
		outF.Close()
		errF.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill() // this one process, by its pid
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, p.cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("===== %s: %s %s (%s) =====\n--- stdout (%s) ---\n%s\n--- stderr (%s) ---\n%s",
				p.name, filepath.Base(bin), strings.Join(args, " "), p.state(),
				p.stdout, childLogTail(p.stdout), p.stderr, childLogTail(p.stderr))
		}
	})
	return p
}

func childFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func childLogTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	head := ""
	if len(lines) > childLogTailLines {
		head = fmt.Sprintf("[... %d earlier lines ...]\n", len(lines)-childLogTailLines)
		lines = lines[len(lines)-childLogTailLines:]
	}
	for i, l := range lines {
		if len(l) > childLogLineMax {
			lines[i] = l[:childLogLineMax] + " [...]"
		}
	}
	return head + strings.Join(lines, "\n")
}

// failureRecorder is a testing.TB that also keeps every failure message, to repeat them
// after the (long) process logs that t.Cleanup prints, so they show at the end of the output.
type failureRecorder struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

// recordFailures wraps t; call it first in a test (its cleanup then runs last).
func recordFailures(t testing.TB) testing.TB {
	r := &failureRecorder{TB: t}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.msgs) == 0 {
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%d failure(s) (repeated after the process logs):", len(r.msgs))
		for _, m := range r.msgs {
			lines := strings.Split(m, "\n")
			if len(lines) > 12 {
				lines = append(lines[:12], fmt.Sprintf("[... %d more lines above ...]", len(lines)-12))
			}
			b.WriteString("\n- " + strings.Join(lines, "\n  "))
		}
		t.Log(b.String())
	})
	return r
}

func (r *failureRecorder) record(msg string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, msg)
	r.mu.Unlock()
}

func (r *failureRecorder) Errorf(format string, args ...any) {
	r.TB.Helper()
	r.record(fmt.Sprintf(format, args...))
	r.TB.Errorf(format, args...)
}

func (r *failureRecorder) Error(args ...any) {
	r.TB.Helper()
	r.record(fmt.Sprint(args...))
	r.TB.Error(args...)
}

func (r *failureRecorder) Fatalf(format string, args ...any) {
	r.TB.Helper()
	r.record(fmt.Sprintf(format, args...))
	r.TB.Fatalf(format, args...)
}

func (r *failureRecorder) Fatal(args ...any) {
	r.TB.Helper()
	r.record(fmt.Sprint(args...))
	r.TB.Fatal(args...)
}

func (p *childProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// state describes how the process ended, or that it still runs.
func (p *childProcess) state() string {
	if !p.exited() {
		return "running"
	}
	if p.cmd.ProcessState == nil {
		return fmt.Sprintf("not started: %v", p.err)
	}
	return p.cmd.ProcessState.String()
}

// wait waits at most timeout for the process to exit and returns its exit code (-1 when
// killed by a signal); ok is false when it still runs.
func (p *childProcess) wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// stop sends SIGTERM and expects exit status 0 within timeout.
func (p *childProcess) stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	if p.exited() {
		t.Errorf("%s had already exited (%s) before it was asked to stop", p.name, p.state())
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM to %s: %v", p.name, err)
		return
	}
	sent := time.Now()
	code, ok := p.wait(timeout)
	if !ok {
		t.Errorf("%s did not exit within %s of SIGTERM", p.name, timeout)
		_ = p.cmd.Process.Kill()
		<-p.done
		return
	}
	if code != 0 {
		t.Errorf("%s exited with %s after SIGTERM, want status 0", p.name, p.state())
		return
	}
	t.Logf("%s stopped gracefully in %s", p.name, time.Since(sent).Round(time.Millisecond))
}

// expectExit waits for a bounded process (its ctx ends it) and expects status 0.
func (p *childProcess) expectExit0(t testing.TB) bool {
	t.Helper()
	<-p.done
	took := time.Since(p.start).Round(time.Millisecond)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s: %s after %s, want exit status 0", p.name, p.state(), took)
		return false
	}
	t.Logf("%s: exit 0 after %s", p.name, took)
	return true
}

// childFreePort returns a loopback TCP port that was free a moment ago (porttest.Free).
func childFreePort(t testing.TB) int {
	t.Helper()
	p, err := porttest.Free()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startNATSServerProcess runs natsServerBin with JetStream on a free loopback port and waits
// until it accepts connections and answers JetStream API requests. It returns the URL.
func startNATSServerProcess(t testing.TB) (string, *childProcess) {
	t.Helper()
	var last string
	for attempt := 0; attempt < 3; attempt++ {
		port := childFreePort(t)
		url := fmt.Sprintf("nats://127.0.0.1:%d", port)
		p := startChild(t, context.Background(), "nats-server", natsServerBin,
			"-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", fmt.Sprint(port))
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) && !p.exited() {
			if err := natsServerReady(url); err == nil {
				return url, p
			} else {
				last = err.Error()
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		last = fmt.Sprintf("%s (%s)\n%s", last, p.state(), childLogTail(p.stderr))
	}
	t.Fatalf("nats-server did not become ready: %s", last)
	return "", nil
}

func natsServerReady(url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// startServeProcess runs `flatbed serve SERVICE --nats URL` and waits until it reports ready
// (its "serving" log line, then /readyz answering 200 on its metrics address).
func startServeProcess(t testing.TB, service, natsURL, storeRoot, stateDir string) *childProcess {
	t.Helper()
	return waitServeReady(t, startChild(t, context.Background(), "serve "+service, flatbedBin, "serve", service,
		"--nats", natsURL, "--store-root", storeRoot, "--state-dir", stateDir, "--metrics-addr", "127.0.0.1:0"))
}

// waitServeReady waits (up to 30 s) until the `flatbed serve` process p answers /readyz.
func waitServeReady(t testing.TB, p *childProcess) *childProcess {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if p.exited() {
			t.Fatalf("%s exited before it was ready: %s", p.name, p.state())
		}
		if metrics := serveMetricsURL(p.stderr); metrics != "" {
			readyz := strings.TrimSuffix(metrics, "/metrics") + "/readyz"
			if resp, err := client.Get(readyz); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 30s", p.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serveMetricsURL finds the "serving" JSON log line of `flatbed serve` and returns the
// metrics URL it names ("" if not logged yet).
func serveMetricsURL(stderrFile string) string {
	f, err := os.Open(stderrFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			Metrics string `json:"metrics"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" && line.Metrics != "" {
			return line.Metrics
		}
	}
	return ""
}

// natsCollector records every message of a core NATS subscription to ">" (exactly what
// `nats sub '>'` sees: publishes, JetStream API traffic, deliveries to inboxes).
type natsCollector struct {
	nc   *nats.Conn
	sub  *nats.Subscription
	mu   sync.Mutex
	msgs []*nats.Msg
}

func collectAllMessages(t testing.TB, url string) *natsCollector {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("e2e-natsCollector"), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c := &natsCollector{nc: nc}
	c.sub, err = nc.Subscribe(">", func(m *nats.Msg) {
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.sub.SetPendingLimits(-1, -1); err != nil { // never drop as a slow consumer
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the subscription is registered on the server
		t.Fatal(err)
	}
	return c
}

// drain returns the messages received so far, after making sure everything published
// before the call has been handled: it flushes (the server has routed all earlier
// publishes to us), then publishes a marker on its own connection and waits until the
// handler has recorded it (a subscription's handler sees messages in order).
func (c *natsCollector) drain(t testing.TB) []*nats.Msg {
	t.Helper()
	if err := c.nc.FlushTimeout(10 * time.Second); err != nil {
		t.Errorf("flushing the natsCollector: %v", err)
	}
	marker := fmt.Sprintf("e2e-marker.%d", childSeq.Add(1))
	if err := c.nc.Publish(marker, nil); err != nil {
		t.Errorf("publishing the marker: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.mu.Lock()
		seen := len(c.msgs) > 0 && c.msgs[len(c.msgs)-1].Subject == marker
		for i := len(c.msgs) - 1; !seen && i >= 0 && i >= len(c.msgs)-1000; i-- {
			seen = c.msgs[i].Subject == marker
		}
		c.mu.Unlock()
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("natsCollector: marker %s not received within 20s", marker)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d, err := c.sub.Dropped(); err != nil || d > 0 {
		t.Errorf("natsCollector dropped %d message(s) (%v)", d, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*nats.Msg(nil), c.msgs...)
}
