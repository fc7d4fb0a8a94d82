package e2e

import (
	"context"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"flatbed.dev/e2e/faultproxy"
	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/registry"
)

// Registry outages end the way package registry's doc says: a registry that stalls fails its
// images within --registry-timeout, saying it stalled; one that restarts is waited for with
// the default back-off; a name that does not resolve fails at once.

// gate is a TCP forwarder in front of a registry that can be taken down (its port refuses
// connections and the open ones are reset) and brought back on the same port: what a
// registry restart looks like to its clients.
type gate struct {
	addr, upstream string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func startGate(t *testing.T, upstream string) *gate {
	t.Helper()
	g := &gate{addr: "127.0.0.1:0", upstream: upstream, conns: map[net.Conn]bool{}}
	g.up(t)
	g.addr = g.ln.Addr().String()
	t.Cleanup(g.down)
	return g
}

// up listens on the gate's address again (the first time on a free port).
func (g *gate) up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", g.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("gate: listening on %s again: %v", g.addr, err)
	}
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	go g.serve(ln)
}

// down closes the port and resets every connection through it.
func (g *gate) down() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, as from a process that died
		}
		c.Close()
		delete(g.conns, c)
	}
}

func (g *gate) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go g.forward(c)
	}
}

func (g *gate) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln == nil {
		c.Close()
		return false
	}
	g.conns[c] = true
	return true
}

func (g *gate) forward(c net.Conn) {
	u, err := net.Dial("tcp", g.upstream)
	if err != nil {
		c.Close()
		return
	}
	if !g.track(c) || !g.track(u) {
		c.Close()
		u.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(u, c)
	go pipe(c, u)
	<-done
	c.Close()
	u.Close()
}

// noScaling runs flatbed with the production retry settings.
func noScaling(t *testing.T) {
	t.Setenv(registry.RetryBaseEnv, "")
	t.Setenv(registry.StallTimeoutEnv, "")
}

// gaveUpIn reads how long the retries of a FAILED line took ("gave up after N failed tries in D").
func gaveUpIn(t *testing.T, line string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`gave up after \d+ failed tries in ([0-9.]+m?s)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("FAILED line does not say how long it retried:\n%s", line)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// (a) A registry that accepts every request and never answers fails the image once the
// registry timeout has run out, saying it stalled, how long it sent nothing and which bounds
// fired: seconds here, with the stall timeout and back-off scaled down.
func TestStalledRegistryFailsWithinBound(t *testing.T) {
	const stall, bound = 500 * time.Millisecond, 3 * time.Second
	t.Setenv(registry.StallTimeoutEnv, stall.String())
	t.Setenv(registry.RetryBaseEnv, "50ms")
	reg := harness.StartRegistry(t)
	hello := imagegen.Demo()[0]
	if err := imagegen.Push(context.Background(), reg.Host, []imagegen.Named{hello}); err != nil {
		t.Fatal(err)
	}
	px, err := faultproxy.Start(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	silent := px.Add(faultproxy.Rule{Fault: faultproxy.Fault{Delay: time.Hour}}) // every request
	wl := mpWriteWishlist(t, px.Host, []imagegen.Named{hello})
	start := time.Now()
	out, _ := runFlatbed(t, 1, "convert", wl, "--store-root", t.TempDir(), "--state-dir", t.TempDir(), "-i", "--registry-timeout", bound.String())
	took := time.Since(start)
	line := failedLine(out, "http://"+px.Host+"/"+hello.Ref())
	if line == "" {
		t.Fatalf("no FAILED line for %s in:\n%s", hello.Ref(), out)
	}
	t.Logf("%s\n(%d requests held, run took %s)", line, silent.Seen(), took.Round(time.Millisecond))
	for _, want := range []string{"the registry stalled: it sent nothing for", "(the stall timeout is 500ms)",
		"the registry timeout (--registry-timeout 3s) ran out"} {
		if !strings.Contains(line, want) {
			t.Errorf("FAILED line lacks %q", want)
		}
	}
	// The bound, plus at most one stall timeout for the request under way, plus slack.
	if d := gaveUpIn(t, line); d < bound || d > bound+stall+time.Second {
		t.Errorf("retried for %s; the registry timeout is %s, the stall timeout %s", d, bound, stall)
	}
	if took > bound+stall+15*time.Second {
		t.Errorf("the run took %s", took)
	}
}

// (b) The registry goes away for 20 s in the middle of a run (its port refuses connections,
// those open are reset) and comes back. With the production retry settings, nothing scaled,
// every image converts: refused connections are retried with back-off (1, 2, 4, 8, 16 s…)
// for up to --registry-timeout (10 min), not for the bus's 15 s of redeliveries.
func TestRegistryRestartMidRun(t *testing.T) {
	const outage = 20 * time.Second
	noScaling(t)
	reg := harness.StartRegistry(t)
	demo := imagegen.Demo()
	if err := imagegen.Push(context.Background(), reg.Host, demo); err != nil {
		t.Fatal(err)
	}
	px, err := faultproxy.Start(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	blobs := px.Add(faultproxy.Rule{Method: "GET", Path: "/blobs/"}) // counts only
	g := startGate(t, px.Host)
	wl := mpWriteWishlist(t, g.addr, demo)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := startChild(t, ctx, "convert", flatbedBin, "convert", wl, "--store-root", t.TempDir(), "--state-dir", t.TempDir(), "-i")
	for blobs.Seen() == 0 {
		if p.exited() {
			t.Fatalf("convert ended (%s) before the first blob was fetched", p.state())
		}
		time.Sleep(5 * time.Millisecond)
	}
	g.down()
	downAt := time.Now()
	t.Logf("registry down after %d blob GET(s), %s into the run", blobs.Seen(), downAt.Sub(p.start).Round(time.Millisecond))
	time.Sleep(outage)
	g.up(t)
	code, ok := p.wait(2 * time.Minute)
	if !ok || code != 0 {
		t.Fatalf("convert: exit %d (ended %v) after an outage of %s", code, ok, outage)
	}
	t.Logf("converted %d images %s after the registry came back (run: %s)", len(demo),
		time.Since(downAt.Add(outage)).Round(time.Millisecond), time.Since(p.start).Round(time.Millisecond))
	stdout, _ := os.ReadFile(p.stdout)
	out := string(stdout)
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "converted ") {
			n++
		}
	}
	if n != len(demo) || strings.Contains(out, "FAILED") {
		t.Errorf("%d of %d images converted:\n%s", n, len(demo), out)
	}
	if logs, _ := os.ReadFile(p.stderr); !strings.Contains(string(logs), "nothing listens on "+g.addr+": is the registry up?") {
		t.Errorf("no retry of a refused connection in the logs (%s)", p.stderr)
	}
}

// (c) A registry name that does not resolve fails the image at once, saying so: no retry.
func TestUnknownRegistryFailsAtOnce(t *testing.T) {
	noScaling(t)
	const host = "flatbed-e2e.invalid"
	hello := imagegen.Demo()[0]
	wl := mpWriteWishlist(t, host, []imagegen.Named{hello})
	start := time.Now()
	out, logs := runFlatbed(t, 1, "convert", wl, "--store-root", t.TempDir(), "--state-dir", t.TempDir(), "-i")
	took := time.Since(start)
	line := failedLine(out, "http://"+host+"/"+hello.Ref())
	t.Logf("%s\n(run took %s)", line, took.Round(time.Millisecond))
	if !strings.Contains(line, "no such host "+host+": check the registry name") || strings.Contains(line, "gave up") {
		t.Errorf("FAILED line does not say the name does not resolve, or says it was retried:\n%s", line)
	}
	for _, retried := range []string{"retrying", "will retry", "trying it again"} {
		if strings.Contains(logs, retried) {
			t.Errorf("the logs say %q: a name that does not resolve was retried", retried)
		}
	}
	if took > 10*time.Second {
		t.Errorf("the run took %s", took)
	}
}
