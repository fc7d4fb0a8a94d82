package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TLS is how registries' certificates are checked and which client certificates are shown
// to them, as overlaybd's convertor and docker take it: Insecure (--insecure) does not verify
// the certificate chain and host name; RootCAs (--root-ca FILE, repeatable) are PEM files of
// certificate authorities trusted besides the system's; CertDirs (--cert-dir DIR, repeatable)
// are directories in docker's certs.d layout (see readCertDir): DIR/*.crt root CAs and
// DIR/NAME.cert with DIR/NAME.key client certificates for every registry, DIR/<host:port>/
// the same for that registry alone; ClientCert and ClientKey (--client-cert, --client-key)
// a client certificate and its key for every registry. A registry that asks for a client
// certificate (mutual TLS) is shown the first one whose issuer it accepts, its own
// directory's first. Plain HTTP is not a TLS setting: an image named http:// is read over
// plain HTTP.
type TLS struct {
	Insecure   bool
	RootCAs    []string
	CertDirs   []string
	ClientCert string
	ClientKey  string
}

// Option returns the registry option for t (one that changes nothing for the default: the
// system's trust store, no client certificate). A file that cannot be read or is no PEM
// certificate (or key), a client certificate without its key, or a key that does not match
// its certificate is an error naming the file; no error says what a key holds.
func (t TLS) Option() (Option, error) {
	if !t.Insecure && len(t.RootCAs) == 0 && len(t.CertDirs) == 0 && t.ClientCert == "" && t.ClientKey == "" {
		return func(*options) {}, nil
	}
	all := certFiles{roots: t.RootCAs}
	switch {
	case t.ClientCert != "" && t.ClientKey == "":
		return nil, fmt.Errorf("--client-cert %s: give its key with --client-key", t.ClientCert)
	case t.ClientKey != "" && t.ClientCert == "":
		return nil, fmt.Errorf("--client-key %s: give its certificate with --client-cert", t.ClientKey)
	case t.ClientCert != "":
		all.pairs = append(all.pairs, clientKey{label: "--client-cert", cert: t.ClientCert, key: t.ClientKey})
	}
	var dirRoots []string
	hosts := map[string]certFiles{}
	for _, d := range t.CertDirs {
		files, perHost, err := readCertDir(d)
		if err != nil {
			return nil, err
		}
		dirRoots = append(dirRoots, files.roots...)
		all.pairs = append(all.pairs, files.pairs...)
		for h, f := range perHost {
			hosts[h] = certFiles{roots: append(hosts[h].roots, f.roots...), pairs: append(hosts[h].pairs, f.pairs...)}
		}
	}
	base, ok := remote.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, fmt.Errorf("the default registry transport is a %T, not an *http.Transport", remote.DefaultTransport)
	}
	global, err := t.config(nil, all, dirRoots, nil)
	if err != nil {
		return nil, err
	}
	ht := &hostTLSTransport{hosts: map[string]*http.Transport{}}
	ht.def = base.Clone()
	ht.def.TLSClientConfig = global
	for h, f := range hosts {
		cfg, err := t.config(global, f, nil, global.Certificates)
		if err != nil {
			return nil, err
		}
		tr := base.Clone()
		tr.TLSClientConfig = cfg
		ht.hosts[h] = tr
	}
	return WithTransport(ht), nil
}

// config is the TLS configuration for files: its root CAs added to the system's (or to
// parent's pool), its client certificates, then the inherited ones. dirRoots are root CAs
// of --cert-dir, named as such in errors.
func (t TLS) config(parent *tls.Config, files certFiles, dirRoots []string, inherited []tls.Certificate) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.Insecure} //nolint:gosec // --insecure asks for it
	if parent != nil {
		cfg.RootCAs = parent.RootCAs
	}
	if len(files.roots)+len(dirRoots) > 0 {
		var pool *x509.CertPool
		if cfg.RootCAs != nil {
			pool = cfg.RootCAs.Clone()
		} else if sys, err := x509.SystemCertPool(); err == nil {
			pool = sys
		} else {
			pool = x509.NewCertPool() // none on this system: the given ones alone
		}
		label := "--root-ca"
		if parent != nil {
			label = "--cert-dir"
		}
		if err := addRoots(pool, label, files.roots); err != nil {
			return nil, err
		}
		if err := addRoots(pool, "--cert-dir", dirRoots); err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	for _, p := range files.pairs {
		pair, err := p.load()
		if err != nil {
			return nil, err
		}
		cfg.Certificates = append(cfg.Certificates, pair)
	}
	cfg.Certificates = append(cfg.Certificates, inherited...)
	return askRecorded(cfg), nil
}

// hostTLSTransport sends each request through the transport of its host's certificate
// directory (--cert-dir DIR/<host:port>/), others through def. A registry's refusal of the
// handshake for want of a client certificate it accepts is marked certsOffered when the
// transport had client certificates to show: Reason tells "none given" from "not accepted".
type hostTLSTransport struct {
	def   *http.Transport
	hosts map[string]*http.Transport // by lower-case host[:port]
}

func (t *hostTLSTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr := t.transportFor(req.URL.Scheme, req.URL.Host)
	resp, err := tr.RoundTrip(req)
	if err != nil && len(tr.TLSClientConfig.Certificates) > 0 && clientCertRefused(err) {
		return nil, &certsOffered{err}
	}
	return resp, err
}

// certsOffered is a handshake refused for want of a client certificate by a transport that
// had some to show (crypto/tls shows none whose issuer the registry does not name).
type certsOffered struct{ err error }

func (e *certsOffered) Error() string { return e.err.Error() }
func (e *certsOffered) Unwrap() error { return e.err }

// transportFor finds host's transport: "host:port" as written, and for the scheme's
// default port "host" and "host:443" (or ":80") alike.
func (t *hostTLSTransport) transportFor(scheme, host string) *http.Transport {
	host = strings.ToLower(host)
	if tr, ok := t.hosts[host]; ok {
		return tr
	}
	port := "443"
	if scheme == "http" {
		port = "80"
	}
	h, p, err := net.SplitHostPort(host)
	switch {
	case err != nil: // no port: the scheme's
		if tr, ok := t.hosts[net.JoinHostPort(strings.Trim(host, "[]"), port)]; ok {
			return tr
		}
	case p == port:
		if tr, ok := t.hosts[h]; ok {
			return tr
		}
		if tr, ok := t.hosts["["+h+"]"]; ok { // an IPv6 address without its port
			return tr
		}
	}
	return t.def
}

// CloseIdleConnections closes every transport's idle connections.
func (t *hostTLSTransport) CloseIdleConnections() {
	t.def.CloseIdleConnections()
	for _, tr := range t.hosts {
		tr.CloseIdleConnections()
	}
}
