package frontdoor

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"flatbed.dev/pkg/registry"
)

// A wish whose http:// registry refuses connections is refused at once (not after the
// check's 15 s of retries), naming the registry and the refused connection; the registry
// options are serve's (the default back-off), not the tests' no-retry ones.
func TestAddWishRegistryRefusesConnections(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there now
	d := openDoor(t, t.TempDir(), func(s *Service) {
		s.Registry = []registry.Option{registry.WithKeychain(authn.NewMultiKeychain())}
	})
	var p Problem
	start := time.Now()
	code, raw := d.call(t, "POST", "/api/v1/wishes", testToken,
		WishRequest{Image: "http://" + host + "/apps/web:1", CvmfsRepo: "unpacked.example.org", SkipThin: true}, &p)
	took := time.Since(start)
	if code != http.StatusUnprocessableEntity || p.Code != "unreachable" {
		t.Errorf("%d %s, want 422 unreachable", code, raw)
	}
	for _, w := range []string{host, "connection refused", "nothing listens on " + host} {
		if !strings.Contains(p.Error, w) {
			t.Errorf("error %q does not say %q", p.Error, w)
		}
	}
	if took > 2*time.Second {
		t.Errorf("took %s to refuse a wish whose registry refuses connections", took)
	}
}
