// Package registrytest runs OCI registries for tests and configures package registry to use
// them quickly.
package registrytest

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/pkg/registry"
)

// Serve starts an in-memory registry, behind wrap unless it is nil, for the rest of the test
// and returns its host:port. It speaks plain HTTP.
func Serve(t testing.TB, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Options are registry options for tests: no retries with back-off, and an empty keychain so
// that no docker config is read.
func Options() []registry.Option {
	return []registry.Option{
		registry.WithRetryBackoff(remote.Backoff{Steps: 1}),
		registry.WithKeychain(authn.NewMultiKeychain()),
	}
}
