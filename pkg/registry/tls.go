package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TLS is how registries' certificates are checked, as overlaybd's convertor takes it:
// Insecure (--insecure) does not verify the certificate chain and host name; RootCAs
// (--root-ca FILE, repeatable) are PEM files of certificate authorities trusted besides the
// system's. Plain HTTP is not a TLS setting: an image named http:// is read over plain HTTP.
type TLS struct {
	Insecure bool
	RootCAs  []string
}

// Option returns the registry option for t (one that changes nothing for the default: the
// system's trust store). A root CA file that cannot be read, or holds no PEM certificate, is an error naming it.
func (t TLS) Option() (Option, error) {
	if !t.Insecure && len(t.RootCAs) == 0 {
		return func(*options) {}, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.Insecure} //nolint:gosec // --insecure asks for it
	if len(t.RootCAs) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool() // none on this system: the given ones alone
		}
		for _, f := range t.RootCAs {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("--root-ca %s: %w", f, err)
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--root-ca %s: no PEM certificate in it (give the CA certificate, -----BEGIN CERTIFICATE-----)", f)
			}
		}
		cfg.RootCAs = pool
	}
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("the default registry transport is a %T, not an *http.Transport", remote.DefaultTransport)
	}
	tr := base.Clone()
	tr.TLSClientConfig = cfg
	return WithTransport(tr), nil
}
