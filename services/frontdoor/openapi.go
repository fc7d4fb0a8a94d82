package frontdoor

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the front door's OpenAPI 3.1 description, served at /openapi.json; a test
// keeps it and Routes in step and validates answers against its schemas.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Service) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(OpenAPI)
}
