package frontdoor

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/events/porttest"
)

// receiver is a webhook receiver on a fixed loopback address that can be down: it records
// each CloudEvent it gets (read and validated with the CloudEvents SDK) and its mode.
type receiver struct {
	addr string
	mu   sync.Mutex
	got  map[string]int // event id -> deliveries
	bad  []string
	srv  *http.Server
}

func (r *receiver) up(t *testing.T, binary bool) {
	t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ct := req.Header.Get("Content-Type")
		ev, err := binding.ToEvent(req.Context(), cehttp.NewMessageFromHttpRequest(req))
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case err != nil:
			r.bad = append(r.bad, err.Error())
		case ev.Validate() != nil:
			r.bad = append(r.bad, ev.Validate().Error())
		case binary != (req.Header.Get("Ce-Id") != ""):
			r.bad = append(r.bad, "wrong mode, content type "+ct)
		case events.ShortType(ev) != events.ConversionCompletedType && events.ShortType(ev) != events.ConversionFailedType:
			r.bad = append(r.bad, "type "+ev.Type())
		default:
			if _, err := events.Check(events.ShortType(ev), ev.Data()); err != nil {
				r.bad = append(r.bad, err.Error())
			}
			r.got[ev.ID()]++
		}
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = r.srv.Serve(ln) }()
}

func (r *receiver) down() { _ = r.srv.Close() }

func (r *receiver) count() (int, map[string]int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := map[string]int{}
	n := 0
	for k, v := range r.got {
		got[k] = v
		n += v
	}
	return n, got, append([]string(nil), r.bad...)
}

// result publishes a conversion.completed (or .failed) for wish on b.
func result(t *testing.T, b *bus.Bus, wish string, failed bool) string {
	t.Helper()
	job := events.Job{WishID: wish, CorrelationID: "run", Image: "https://registry.example.org/apps/" + wish + ":1", CvmfsRepo: "unpacked.example.org", SubmittedAt: time.Now().UTC()}
	var env *events.Envelope
	var err error
	if failed {
		env, err = events.New(events.ConversionFailedType, "flatbed/notifier", events.ID(events.ConversionFailedType, wish), job, job.Image,
			events.ConversionFailed{Job: job, Stage: "resolver", Error: "manifest unknown"})
	} else {
		img := events.Image{Registry: "registry.example.org", Repository: "apps/" + wish, Tag: "1", Name: "registry.example.org/apps/" + wish + ":1",
			Digest: "sha256:" + hex64('a'), MediaType: "application/vnd.oci.image.manifest.v1+json", ConfigDigest: "sha256:" + hex64('b'), LayerCount: 1}
		env, err = events.New(events.ConversionCompletedType, "flatbed/notifier", events.ID(events.ConversionCompletedType, wish), job, job.Image,
			events.ConversionCompleted{Job: job, Image: img, PublicPath: img.Name})
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	return env.ID
}

// running is a bus with the notifier's consumer, running until stopped.
type running struct {
	b    *bus.Bus
	stop func()
}

func runNotifier(t *testing.T, ns *bus.Embedded, url string, binary bool) *running {
	t.Helper()
	b, err := bus.New(context.Background(), bus.Options{Connect: ns.Connect, Source: "flatbed/test", Registerer: prometheus.NewRegistry(), Logger: quietLog(),
		RetryBase: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := (&Notifier{URL: url, Binary: binary, Log: quietLog()}).Register(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.Run(ctx); close(done) }()
	r := &running{b: b, stop: sync.OnceFunc(func() { cancel(); <-done; _ = b.Close() })}
	t.Cleanup(r.stop)
	return r
}

// The outbound webhook: a receiver that is down at first, then up, then down again while
// flatbed restarts, receives every result exactly once, each a valid CloudEvent (read with
// the CloudEvents SDK), in structured and in binary mode.
func TestNotifyWebhookSurvivesOutagesAndRestarts(t *testing.T) {
	for _, binary := range []bool{false, true} {
		name := "structured"
		if binary {
			name = "binary"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { ns.Shutdown() }()
			port, err := porttest.Free() // it comes up later: nobody else may take it meanwhile
			if err != nil {
				t.Fatal(err)
			}
			rc := &receiver{addr: fmt.Sprintf("127.0.0.1:%d", port), got: map[string]int{}} // down: connections are refused
			url := "http://" + rc.addr + "/hook"

			r := runNotifier(t, ns, url, binary)
			var ids []string
			for i, w := range []string{"w1", "w2", "w3"} {
				ids = append(ids, result(t, r.b, w, i == 2))
			}
			time.Sleep(1500 * time.Millisecond) // several refused attempts
			rc.up(t, binary)
			waitCount(t, rc, 3)

			// The receiver goes down, flatbed stops (its embedded NATS server too, whose
			// state is on disk); when it is back, results are published before the
			// notifier runs again, and the receiver comes up after that.
			rc.down()
			r.stop()
			ns.Shutdown()
			if ns, err = bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: dir}); err != nil {
				t.Fatal(err)
			}
			pub, err := bus.New(context.Background(), bus.Options{Connect: ns.Connect, Source: "flatbed/test", Registerer: prometheus.NewRegistry(), Logger: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, result(t, pub, "w4", false), result(t, pub, "w5", true))
			_ = pub.Close()
			r = runNotifier(t, ns, url, binary)
			time.Sleep(time.Second)
			rc.up(t, binary)
			waitCount(t, rc, 5)
			time.Sleep(time.Second) // a duplicate would come now
			defer rc.down()
			n, got, bad := rc.count()
			if len(bad) > 0 {
				t.Errorf("invalid deliveries: %v", bad)
			}
			if n != len(ids) {
				t.Errorf("%d deliveries, want %d: %v", n, len(ids), got)
			}
			for _, id := range ids {
				if got[id] != 1 {
					t.Errorf("%s delivered %d times, want once", id, got[id])
				}
			}
		})
	}
}

func waitCount(t *testing.T, rc *receiver, want int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if n, _, _ := rc.count(); n >= want {
			return
		}
	}
	n, got, bad := rc.count()
	t.Fatalf("%d of %d results received within 30s: %v %v", n, want, got, bad)
}
