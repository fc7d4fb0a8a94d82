package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A registry that requires a client certificate (mutual TLS) and gets none refuses it after
// the TLS 1.3 handshake, with a "certificate required" alert. Our request may already be on
// its way then: the registry's kernel answers it with a reset, and the client reads
// "connection reset" or writes into a "broken pipe" before (or instead of) the alert. Such a
// reset looks temporary. certAskTransport tells it apart: when the registry asked for a
// client certificate during the handshake of a new connection, none was shown, and the first
// request on that connection met a reset or broken pipe, the request is tried once more at
// once (the alert usually shows then); a second such reset is taken as the refusal
// (noCertShown), which is final. A registry that only asks for a certificate it does not
// require would have to reset two new connections in a row right after their handshakes to
// be taken for one that requires it.

// certAsk records, for one request, whether a registry asked for a client certificate
// during a handshake and was shown none.
type certAsk struct{ unanswered atomic.Bool }

type certAskKey struct{}

// askRecorded makes cfg record a registry's request for a client certificate that it
// answers with none (none given, or none whose issuer the registry names) in the certAsk of
// the handshake's context. It shows the same certificate crypto/tls would: the first of
// cfg.Certificates the registry accepts.
func askRecorded(cfg *tls.Config) *tls.Config {
	certs := cfg.Certificates
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		for i := range certs {
			if cri.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
		if a, ok := cri.Context().Value(certAskKey{}).(*certAsk); ok {
			a.unanswered.Store(true)
		}
		return new(tls.Certificate), nil
	}
	return cfg
}

// defaultTransport is go-containerregistry's default transport, recording requests for
// client certificates (it has none to show).
var defaultTransport http.RoundTripper = func() http.RoundTripper {
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		return remote.DefaultTransport
	}
	tr := base.Clone()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if tr.TLSClientConfig != nil {
		cfg = tr.TLSClientConfig.Clone()
	}
	tr.TLSClientConfig = askRecorded(cfg)
	return tr
}()

// certAskTransport tries a request once more at once when a registry that asked for a
// client certificate and was shown none reset the new connection right after the handshake,
// and marks a second such reset noCertShown (see above).
type certAskTransport struct{ inner http.RoundTripper }

func (t *certAskTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err, refused := t.once(req)
	if !refused || (req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) || req.Context().Err() != nil {
		return resp, err
	}
	again := req.Clone(req.Context())
	if req.GetBody != nil {
		if again.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	resp, err, refused = t.once(again)
	if refused {
		return nil, &noCertShown{err}
	}
	return resp, err
}

// once sends req; refused says it failed with a reset or broken pipe on a new connection
// whose registry asked for a client certificate and was shown none.
func (t *certAskTransport) once(req *http.Request) (*http.Response, error, bool) {
	ask := &certAsk{}
	var fresh atomic.Bool
	ctx := context.WithValue(req.Context(), certAskKey{}, ask)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { fresh.Store(!i.Reused) },
	})
	resp, err := t.inner.RoundTrip(req.WithContext(ctx)) //nolint:bodyclose // the caller's
	refused := err != nil && ask.unanswered.Load() && fresh.Load() &&
		(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
	return resp, err, refused
}

// noCertShown is a registry that asked for a client certificate, was shown none, and reset
// two new connections in a row right after their handshakes: it requires one.
type noCertShown struct{ err error }

func (e *noCertShown) Error() string { return e.err.Error() }
func (e *noCertShown) Unwrap() error { return e.err }
