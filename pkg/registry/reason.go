package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Reason says in a few words what went wrong talking to the registry and what to do, for
// people: "no such host r.example.org: check the registry name", "nothing listens on
// 127.0.0.1:5000: is the registry up?", "registry answered 503 Service Unavailable", …; ""
// when err is none of those. Reason names hosts but never whole URLs, so it cannot leak a
// signed URL or a token.
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
	host := hostOf(err)
	var de *net.DNSError
	if errors.As(err, &de) {
		if de.IsNotFound {
			return fmt.Sprintf("no such host %s: check the registry name", de.Name)
		}
		return fmt.Sprintf("cannot look up %s: %s (the DNS server failed)", de.Name, de.Err)
	}
	switch { // faults that pass first: see Temporary
	case noCert(err):
		return fmt.Sprintf("the registry at %s asks for a client certificate (mutual TLS) and was shown none (it reset two new connections right after their handshakes, before its alert arrived): give %s", host, clientCertFlags)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens on %s: is the registry up?", host)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return fmt.Sprintf("%s reset the connection", host)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the registry closed the connection before the answer was complete"
	case badCertificate(err):
		return certificateReason(err, host)
	case notTLS(err):
		return fmt.Sprintf("%s does not speak TLS (it answered the TLS handshake in plain text): if the registry serves plain HTTP, name the image with http://", host)
	case clientCertRefused(err):
		return clientCertReason(err, host)
	case tlsRefused(err):
		alert, ok := remoteAlert(err)
		if !ok {
			var ae tls.AlertError
			errors.As(err, &ae)
			alert = ae.Error()
		}
		return fmt.Sprintf("the TLS handshake with %s failed (%s): its TLS settings and ours have nothing in common, or it asks for a client certificate (give --cert-dir DIR or --client-cert FILE --client-key FILE); if the registry serves plain HTTP, name the image with http://", host, alert)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("%s did not answer in time", host)
	}
	if ne, ok := netError(err); ok {
		if ne.Timeout() {
			return fmt.Sprintf("%s did not answer in time", host)
		}
		return "network error"
	}
	return ""
}

// certificateReason says which check the certificate failed and what fixes it.
func certificateReason(err error, host string) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	const trust = "pass the CA that signed it with --root-ca FILE (or skip the check with --insecure), or add it to the system's trust store (/usr/local/share/ca-certificates, then update-ca-certificates)"
	switch {
	case errors.As(err, &ua):
		return fmt.Sprintf("the TLS certificate of %s is not trusted (signed by an unknown authority): %s, or name the image with http:// if the registry also serves plain HTTP", host, trust)
	case errors.As(err, &he):
		return fmt.Sprintf("the TLS certificate of %s is not valid for that name (%v): use a name the certificate is for", host, he)
	case errors.As(err, &ci):
		return fmt.Sprintf("the TLS certificate of %s is not valid (%v): the registry must renew it", host, ci)
	}
	return fmt.Sprintf("the TLS certificate of %s is not trusted: %s", host, trust)
}

// clientCertRefused is a handshake the registry ended because it wants a client
// certificate (mutual TLS) it did not get or did not accept.
func clientCertRefused(err error) bool {
	a, ok := remoteAlert(err)
	return ok && clientCertAlerts[a]
}

// clientCertFlags are the flags that give client certificates.
const clientCertFlags = "--cert-dir DIR (DIR/NAME.cert with its key DIR/NAME.key, for every registry, or in DIR/<host:port>/ for that one) or --client-cert FILE --client-key FILE"

// clientCertReason says what the registry's alert about client certificates means: none
// was shown (we had none, or none the registry names an issuer of), or the one shown was
// refused.
func clientCertReason(err error, host string) string {
	a, _ := remoteAlert(err)
	const give = clientCertFlags
	var offered *certsOffered
	switch {
	case !errors.As(err, &offered):
		return fmt.Sprintf("the registry at %s asks for a client certificate (mutual TLS) and was shown none (%s): give %s", host, a, give)
	case a == "tls: certificate required":
		return fmt.Sprintf("the registry at %s asks for a client certificate (mutual TLS) signed by an authority it trusts, and none of those given is (%s): give one it trusts with %s", host, a, give)
	}
	return fmt.Sprintf("the registry at %s did not accept our client certificate (%s): give a valid one, signed by an authority it trusts, with %s", host, a, give)
}

// hostOf is the host:port a failed request went to, as far as err tells.
func hostOf(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			if u.Port() != "" {
				return u.Host
			}
			switch u.Scheme {
			case "https":
				return u.Host + ":443"
			case "http":
				return u.Host + ":80"
			}
			return u.Host
		}
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Addr != nil {
		return oe.Addr.String()
	}
	return "the registry"
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
