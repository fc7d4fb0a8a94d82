package frontdoor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/registry/registrytest"
)

const testToken = "s3cret-token-for-tests"

// noRedirects answers with the first response, as the OpenAPI document describes it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// door is a front door on an embedded NATS server whose JetStream lives in dir, answering on
// an httptest server.
type door struct {
	s   *Service
	ns  *bus.Embedded
	b   *bus.Bus
	srv *httptest.Server
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openDoor(t *testing.T, dir string, configure func(*Service)) *door {
	t.Helper()
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.New(context.Background(), bus.Options{Connect: ns.Connect, Source: "flatbed/test", Registerer: prometheus.NewRegistry(), Logger: quietLog()})
	if err != nil {
		ns.Shutdown()
		t.Fatal(err)
	}
	s := &Service{Bus: b, Log: quietLog(), Registry: registrytest.Options(), Token: []byte(testToken), Metrics: NewMetrics(prometheus.NewRegistry())}
	if configure != nil {
		configure(s)
	}
	if err := s.Open(context.Background(), b.JetStream(), 1); err != nil {
		t.Fatal(err)
	}
	d := &door{s: s, ns: ns, b: b, srv: httptest.NewServer(s.Handler())}
	t.Cleanup(d.close)
	return d
}

func (d *door) close() {
	d.srv.Close()
	_ = d.b.Close()
	d.ns.Shutdown()
}

// call makes a request with the token (token "" sends none) and decodes a JSON answer into
// out (when not nil); it returns the status and the raw body.
func (d *door) call(t *testing.T, method, path, token string, body any, out any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, d.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkAnswer(t, method, path, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode, raw
}

// testRegistry serves an in-memory registry holding repo:tag.
func testRegistry(t *testing.T, refs ...string) string {
	t.Helper()
	host := registrytest.Serve(t, nil)
	for _, ref := range refs {
		r, err := name.ParseReference(host+"/"+ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
	}
	return host
}

// storedSubjects counts the messages on each subject of the pipeline stream.
func storedSubjects(t *testing.T, d *door) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := d.b.JetStream().Stream(ctx, "FLATBED")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("flatbed.>"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for s, n := range info.State.Subjects {
		out[s] = int(n)
	}
	return out
}
