package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Temporary says err may go away by itself when the operation is tried again later: a
// connection refused, reset or cut short, a registry that stalled, 408, 429 and 5xx answers,
// and errors marked Transient. Everything else is not: 404, 401, 403, a name that does not
// resolve, a TLS certificate that is not trusted, a registry that does not speak TLS, a
// malformed manifest, and faults that outlasted the registry timeout (see Final).
//
// An error may hold several (go-containerregistry tries https and http on a plain-http
// registry): a temporary fault among them wins over the https try meeting plain HTTP.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || gaveUpOn(err) {
		return false
	}
	var tr *transient
	if errors.As(err, &tr) {
		return true
	}
	if code, ok := Status(err); ok {
		return busy(code)
	}
	if noCert(err) { // a reset that is the registry's refusal (see certAskTransport)
		return false
	}
	if cutOff(err) {
		return true
	}
	if noSuchHost(err) || badCertificate(err) || notTLS(err) || tlsRefused(err) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.Temporary()
	}
	_, ok := netError(err) // timeouts, DNS servers that fail, other network trouble
	return ok
}

// netError finds the net.Error in err, if any. A bare syscall.Errno is one too (it has
// Timeout and Temporary), but a full disk or a permission denied is not the network's.
func netError(err error) (net.Error, bool) {
	var ne net.Error
	if !errors.As(err, &ne) {
		return nil, false
	}
	_, errno := ne.(syscall.Errno)
	return ne, !errno
}

// Final says err is the registry's last word on this operation: an answer no new try can
// change (404, 401, 403, other 4xx), a name that does not resolve, a TLS certificate that is
// not trusted, a registry that does not speak TLS or refuses the handshake, or temporary
// faults that went on until the registry timeout ran out. A wish fails with it at once.
// Errors that are neither Final nor Temporary (a full disk, …) are not the registry's.
func Final(err error) bool {
	switch {
	case err == nil || errors.Is(err, context.Canceled):
		return false
	case gaveUpOn(err):
		return true
	case Temporary(err):
		return false
	}
	if _, ok := Status(err); ok {
		return true
	}
	return noSuchHost(err) || badCertificate(err) || notTLS(err) || tlsRefused(err) || noCert(err)
}

// noCert is a registry that asked for a client certificate, was shown none and reset two new
// connections in a row right after their handshakes (see certAskTransport).
func noCert(err error) bool {
	var nc *noCertShown
	return errors.As(err, &nc)
}

// cutOff is a connection that was refused, reset, closed early or stalled.
func cutOff(err error) bool {
	var se errStalled
	return errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, context.DeadlineExceeded)
}

// Transient marks err as temporary: a fault that another try may mend though no network
// error says so, such as a blob that arrived with other bytes than its digest names, or a
// manifest that changed while it was read. Do runs the operation again after it.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transient{err}
}

type transient struct{ err error }

func (e *transient) Error() string { return e.err.Error() }
func (e *transient) Unwrap() error { return e.err }

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

// noSuchHost is a registry name the DNS says does not exist (not a DNS server that failed).
func noSuchHost(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// badCertificate is a TLS certificate the system does not trust for the registry's name.
func badCertificate(err error) bool {
	var cve *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// notTLS is a registry that answered a TLS handshake with something else, usually plain HTTP.
func notTLS(err error) bool {
	var rh tls.RecordHeaderError
	return errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &rh)
}

// tlsRefused is a TLS handshake the registry ended with an alert: its TLS settings and ours
// have nothing in common, or it wants a client certificate it did not get, which no new try
// changes. An alert that says the registry itself failed (internal error) may pass.
func tlsRefused(err error) bool {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return true
	}
	a, ok := remoteAlert(err)
	return ok && a != "tls: internal error"
}

// remoteAlert is the TLS alert the registry sent, as crypto/tls words it ("tls: certificate
// required"): crypto/tls gives a peer's alert as a *net.OpError "remote error" around a
// value of an unexported type.
func remoteAlert(err error) (string, bool) {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return "", false
	}
	s := oe.Err.Error()
	return s, strings.HasPrefix(s, "tls: ")
}

// clientCertAlerts are the alerts a registry that checks client certificates (mutual TLS)
// ends the handshake with when it got none (TLS 1.3: certificate required; TLS 1.2: bad
// certificate) or one it does not accept.
var clientCertAlerts = map[string]bool{
	"tls: certificate required":          true,
	"tls: bad certificate":               true,
	"tls: unsupported certificate":       true,
	"tls: revoked certificate":           true,
	"tls: expired certificate":           true,
	"tls: unknown certificate":           true,
	"tls: unknown certificate authority": true,
	"tls: access denied":                 true,
}
