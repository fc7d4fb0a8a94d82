// Package relocatetest holds what tests of relocation need: a registry that keeps no digest.
package relocatetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// RewriteManifests wraps a registry so that it stores every manifest put to it
// re-serialized: the same content under another digest, as a registry that converts
// manifests does. Relocating to it must fail.
func RewriteManifests(registry http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			body, _ := io.ReadAll(r.Body)
			var v any
			if err := json.Unmarshal(body, &v); err == nil {
				body, _ = json.MarshalIndent(v, "", "\t")
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		registry.ServeHTTP(w, r)
	})
}
