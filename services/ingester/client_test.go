package ingester

import (
	"net/http"
	"sync/atomic"
	"testing"
)

// One ingester pings the registry once, however many layers of however many repositories it
// fetches.
func TestIngestPingsOnce(t *testing.T) {
	var pings atomic.Int32
	f := newFixture(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				pings.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	s, _ := newService(t, t.TempDir())
	pings.Store(0)
	layers := 0
	for _, ref := range []string{"demo/hello:1.0", "demo/hello:2.0", "demo/tools:latest"} {
		_, in := f.request(t, ref, 0)
		for i := range in.Image.LayerCount {
			_, in := f.request(t, ref, i)
			if err := handle(t, s, in, 1); err != nil {
				t.Fatal(err)
			}
			layers++
		}
	}
	if got := f.count.blobs.Load(); int(got) < 2 {
		t.Fatalf("%d blobs fetched; the test would show nothing", got)
	}
	if got := pings.Load(); got != 1 {
		t.Errorf("%d pings (GET /v2/) for %d layers (%d fetched) in 2 repositories, want 1", got, layers, f.count.blobs.Load())
	}
}
