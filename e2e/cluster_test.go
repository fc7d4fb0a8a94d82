package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
	"flatbed.dev/pkg/imagegen"
)

// natsNode is one nats-server process of a test cluster.
type natsNode struct {
	name, url string
	proc      *childProcess
}

// startNATSCluster runs three nats-server processes forming one JetStream cluster on loopback
// ports and waits until JetStream answers (a meta leader is elected).
func startNATSCluster(t *testing.T) []*natsNode {
	t.Helper()
	const n = 3
	client, cluster := make([]int, n), make([]int, n)
	for i := range n {
		client[i], cluster[i] = childFreePort(t), childFreePort(t)
	}
	var nodes []*natsNode
	for i := range n {
		var routes []string
		for j := range n {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", cluster[j]))
			}
		}
		name := fmt.Sprintf("n%d", i+1)
		p := startChild(t, context.Background(), "nats-"+name, natsServerBin,
			"-js", "-sd", t.TempDir(), "-a", "127.0.0.1", "-p", fmt.Sprint(client[i]),
			"--server_name", name, "--cluster_name", "flatbed-e2e",
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cluster[i]), "--routes", strings.Join(routes, ","))
		nodes = append(nodes, &natsNode{name: name, url: fmt.Sprintf("nats://127.0.0.1:%d", client[i]), proc: p})
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, nd := range nodes {
		for natsServerReady(nd.url) != nil {
			if time.Now().After(deadline) || nd.proc.exited() {
				t.Fatalf("JetStream cluster not ready: %s %s\n%s", nd.name, nd.proc.state(), childLogTail(nd.proc.stderr))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nodes
}

// TestConversionSurvivesLosingANATSNode converts through a 3-node JetStream cluster (streams
// at R3) and kills the node leading the pipeline stream while layers are being ingested.
func TestConversionSurvivesLosingANATSNode(tt *testing.T) {
	imgs := append(imagegen.Corpus(), imagegen.Demo()...)
	reg := mpPushImages(tt, imgs)
	wl := mpWriteWishlist(tt, reg.Host, imgs)
	nodes := startNATSCluster(tt)
	var urls []string
	for _, nd := range nodes {
		urls = append(urls, nd.url)
	}
	all := strings.Join(urls, ",")
	store := tt.TempDir()

	// The services in two processes, connected to different nodes first.
	startServeProcess(tt, "resolver", urls[0]+","+all, store, tt.TempDir())
	startServeProcess(tt, "ingester", urls[1]+","+all, store, tt.TempDir())
	startServeProcess(tt, "flattener", urls[2]+","+all, store, tt.TempDir())
	startServeProcess(tt, "thinpusher", urls[0]+","+all, store, tt.TempDir())
	startServeProcess(tt, "notifier", urls[1]+","+all, store, tt.TempDir())

	nc, err := nats.Connect(all, nats.MaxReconnects(-1))
	if err != nil {
		tt.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ingested := make(chan struct{}, 1)
	sub, err := nc.Subscribe(events.Subject(events.LayerIngestedType), func(*nats.Msg) {
		select {
		case ingested <- struct{}{}:
		default:
		}
	})
	if err != nil {
		tt.Fatal(err)
	}
	defer sub.Unsubscribe()

	conv := mpStartConvert(tt, "convert", wl, "--nats", all, "--store-root", store)
	select {
	case <-ingested:
	case <-time.After(60 * time.Second):
		tt.Fatal("no layer was ingested within 60s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	info, err := js.Stream(ctx, events.Stream)
	cancel()
	if err != nil {
		tt.Fatal(err)
	}
	si := info.CachedInfo()
	if si.Config.Replicas != 3 || si.Cluster == nil {
		tt.Fatalf("stream %s has %d replicas (cluster %+v), want 3", events.Stream, si.Config.Replicas, si.Cluster)
	}
	victim := nodes[0]
	for _, nd := range nodes {
		if nd.name == si.Cluster.Leader {
			victim = nd
		}
	}
	tt.Logf("killing %s (leader of %s) mid-run", victim.name, events.Stream)
	if err := victim.proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		tt.Fatal(err)
	}
	if code, ok := conv.wait(4 * time.Minute); !ok || code != 0 {
		tt.Fatalf("convert did not complete after losing %s: exit %d (finished %t)\n%s", victim.name, code, ok, childLogTail(conv.stdout))
	}
	mpCheckPublicPaths(tt, store, reg.Host, imgs)
}
