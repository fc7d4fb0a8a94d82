package bus_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus"
	"flatbed.dev/events/porttest"
)

// cluster is three in-process NATS nodes routed to each other, started one by one.
type cluster struct {
	name                    string
	clientPorts, routePorts [3]int
}

func newCluster(t *testing.T, name string) *cluster {
	c := &cluster{name: name}
	for i := range 3 {
		c.clientPorts[i], c.routePorts[i] = freePort(t), freePort(t)
	}
	return c
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := porttest.Free()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// serverLog keeps what a NATS node logs, to show when it fails to start.
type serverLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *serverLog) logf(level, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.buf, level+" "+format+"\n", v...)
}
func (l *serverLog) Noticef(format string, v ...any) { l.logf("INF", format, v...) }
func (l *serverLog) Warnf(format string, v ...any)   { l.logf("WRN", format, v...) }
func (l *serverLog) Fatalf(format string, v ...any)  { l.logf("FTL", format, v...) }
func (l *serverLog) Errorf(format string, v ...any)  { l.logf("ERR", format, v...) }
func (l *serverLog) Debugf(string, ...any)           {}
func (l *serverLog) Tracef(string, ...any)           {}
func (l *serverLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (c *cluster) start(t *testing.T, i int) {
	var routes []string
	for j := range 3 {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", c.routePorts[j]))
		}
	}
	o := &server.Options{ServerName: fmt.Sprint(c.name, i+1), Host: "127.0.0.1", Port: c.clientPorts[i], JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, Routes: server.RoutesFromStr(strings.Join(routes, ","))}
	o.Cluster.Name, o.Cluster.Host, o.Cluster.Port = c.name, "127.0.0.1", c.routePorts[i]
	o.NoLog = false
	s, err := server.NewServer(o)
	if err != nil {
		t.Error(err)
		return
	}
	logs := &serverLog{}
	s.SetLoggerV2(logs, false, false, false)
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(30 * time.Second) {
		t.Errorf("node %d did not start within 30s (client port %d, route port %d); it logged:\n%s", i+1, c.clientPorts[i], c.routePorts[i], logs)
	}
}

func (c *cluster) open(ctx context.Context, wait time.Duration) (*bus.Bus, error) {
	url := fmt.Sprintf("nats://127.0.0.1:%d", c.clientPorts[0])
	return bus.New(ctx, bus.Options{Connect: func(name string) (*nats.Conn, error) { return nats.Connect(url, nats.Name(name)) },
		Source: "flatbed/test", Registerer: prometheus.NewRegistry(), ClusterWait: wait})
}

// A service started with its cluster (compose, systemd and Kubernetes start them together)
// finds two of three nodes up: the streams' three replicas cannot be placed yet. It waits
// for the third node instead of exiting with "no suitable peers for placement"; a cluster
// that never completes still ends the wait, saying what to check.
func TestNewWaitsForAFormingCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c := newCluster(t, "late")
	c.start(t, 0)
	c.start(t, 1)
	var third time.Time
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(3 * time.Second)
		third = time.Now()
		c.start(t, 2)
	}()
	b, err := c.open(ctx, 45*time.Second)
	<-done
	if err != nil {
		t.Fatalf("bus.New with the third node starting late: %v", err)
	}
	defer b.Close()
	if time.Now().Before(third) || b.Replicas() != 3 {
		t.Errorf("bus.New returned with %d replicas at %v, the third node started at %v", b.Replicas(), time.Now(), third)
	}

	never := newCluster(t, "never")
	never.start(t, 0)
	never.start(t, 1)
	began := time.Now()
	_, err = never.open(ctx, 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "still not ready after 2s") || !strings.Contains(err.Error(), "all 3 nodes") {
		t.Errorf("a cluster missing a node for good: %v", err)
	}
	if took := time.Since(began); took > 15*time.Second {
		t.Errorf("giving up took %s with a 2s wait", took)
	}
}
