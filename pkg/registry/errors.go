package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Temporary says err may go away by itself when the operation is tried again later: network
// trouble, a download that broke off, 408, 429 and 5xx answers. Everything else (404, 401,
// 403, a malformed manifest, …) is permanent: trying again cannot help.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if code, ok := Status(err); ok {
		return busy(code)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.Temporary()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

func busy(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// Status returns the HTTP status of the registry answer behind err.
func Status(err error) (int, bool) {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode != 0 {
		return te.StatusCode, true
	}
	return 0, false
}

// NotFound says the registry answered 404 (or named an unknown manifest, blob or repository).
func NotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range te.Errors {
		switch d.Code {
		case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
			return true
		}
	}
	return false
}

// Denied says the registry refused the credentials (401/403).
func Denied(err error) bool {
	code, ok := Status(err)
	return ok && (code == http.StatusUnauthorized || code == http.StatusForbidden)
}

// Reason says in a few words what went wrong talking to the registry, for people: "registry
// answered 503 Service Unavailable", "the connection was reset", …; "" when err is none of
// those. Reason never includes URLs, so it cannot leak a signed URL or a token.
func Reason(err error) string {
	var se errStalled
	if errors.As(err, &se) {
		return se.Error()
	}
	if code, ok := Status(err); ok {
		s := fmt.Sprintf("registry answered %d %s", code, http.StatusText(code))
		var te *transport.Error
		errors.As(err, &te)
		var codes []string
		for _, d := range te.Errors {
			codes = append(codes, string(d.Code))
		}
		if len(codes) > 0 {
			s += " (" + strings.Join(codes, ", ") + ")"
		}
		return s
	}
	switch {
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "the registry reset the connection"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the registry refused the connection (is it running?)"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the registry closed the connection before the answer was complete"
	case errors.Is(err, context.DeadlineExceeded):
		return "the registry did not answer in time"
	}
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return "the registry did not answer in time"
		}
		return "network error"
	}
	return ""
}

// Explain prefixes err with its Reason ("registry answered 503 Service Unavailable: GET …");
// errors.Is and errors.As still see err.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	r := Reason(err)
	if r == "" {
		return err
	}
	return &explained{reason: r, err: err}
}

type explained struct {
	reason string
	err    error
}

func (e *explained) Error() string { return e.reason + ": " + e.err.Error() }
func (e *explained) Unwrap() error { return e.err }
