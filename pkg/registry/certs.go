package registry

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// certFiles are the certificate files that apply to some registries: root CAs (PEM
// certificates) and client certificates with their keys.
type certFiles struct {
	roots []string    // *.crt, --root-ca
	pairs []clientKey // *.cert + *.key, --client-cert + --client-key
}

// clientKey is a client certificate file and its key file. label is how the error names
// where the pair came from ("--cert-dir", "--client-cert").
type clientKey struct {
	label, cert, key string
}

// readCertDir reads a certificate directory the way docker's and containerd's certs.d are
// written: *.crt are root CAs, FILE.cert with FILE.key a client certificate and its key; those
// apply to every registry. A subdirectory named for a registry, host[:port] (docker's
// /etc/docker/certs.d/<host:port>/), holds the same kinds of files for that registry alone.
// Other files are ignored (containerd's hosts.toml, say). A .cert without its .key, a .key
// without its .cert, or a directory that holds none of these is an error naming it.
func readCertDir(dir string) (all certFiles, hosts map[string]certFiles, err error) {
	all, subdirs, err := scanCertDir(dir)
	if err != nil {
		return certFiles{}, nil, err
	}
	hosts = map[string]certFiles{}
	for _, sub := range subdirs {
		files, _, err := scanCertDir(filepath.Join(dir, sub))
		if err != nil {
			return certFiles{}, nil, err
		}
		if len(files.roots)+len(files.pairs) > 0 {
			hosts[strings.ToLower(sub)] = files
		}
	}
	if len(all.roots)+len(all.pairs)+len(hosts) == 0 {
		return certFiles{}, nil, fmt.Errorf("--cert-dir %s: no root CA (*.crt), client certificate (*.cert with its *.key) or registry directory (<host:port>/ holding them) in it", dir)
	}
	return all, hosts, nil
}

// scanCertDir lists the certificate files of one directory and its subdirectories' names.
func scanCertDir(dir string) (files certFiles, subdirs []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return certFiles{}, nil, fmt.Errorf("--cert-dir %s: %w", dir, err)
	}
	names := map[string]bool{}
	for _, e := range entries {
		names[e.Name()] = true
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		fi, err := os.Stat(path) // follows symbolic links, as certs.d directories often hold
		if err != nil {
			return certFiles{}, nil, fmt.Errorf("--cert-dir %s: %w", path, err)
		}
		if fi.IsDir() {
			subdirs = append(subdirs, name)
			continue
		}
		base, ext := strings.TrimSuffix(name, filepath.Ext(name)), filepath.Ext(name)
		switch ext {
		case ".crt":
			files.roots = append(files.roots, path)
		case ".cert":
			if !names[base+".key"] {
				return certFiles{}, nil, fmt.Errorf("--cert-dir %s: the client certificate has no key %s next to it (a client certificate NAME.cert goes with its key NAME.key; root CAs are *.crt)", path, base+".key")
			}
			files.pairs = append(files.pairs, clientKey{label: "--cert-dir", cert: path, key: filepath.Join(dir, base+".key")})
		case ".key":
			if !names[base+".cert"] {
				return certFiles{}, nil, fmt.Errorf("--cert-dir %s: the key has no client certificate %s next to it (a key NAME.key goes with its client certificate NAME.cert)", path, base+".cert")
			}
		}
	}
	sort.Strings(subdirs)
	return files, subdirs, nil
}

// addRoots adds the certificates of PEM files to pool; label names the option they came
// from in errors.
func addRoots(pool *x509.CertPool, label string, files []string) error {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("%s %s: %w", label, f, err)
		}
		if !pool.AppendCertsFromPEM(data) {
			return fmt.Errorf("%s %s: no PEM certificate in it (give the CA certificate, -----BEGIN CERTIFICATE-----)", label, f)
		}
	}
	return nil
}

// load reads a client certificate and its key. Errors name the files, never what the key
// holds: the key is a secret.
func (p clientKey) load() (tls.Certificate, error) {
	certPEM, err := os.ReadFile(p.cert)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: client certificate %s: %w", p.label, p.cert, err)
	}
	if err := checkCertPEM(certPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: client certificate %s: %w", p.label, p.cert, err)
	}
	keyPEM, err := os.ReadFile(p.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: key %s: %w", p.label, p.key, err)
	}
	if err := checkKeyPEM(keyPEM); err != nil {
		return tls.Certificate{}, fmt.Errorf("%s: key %s: %w", p.label, p.key, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			return tls.Certificate{}, fmt.Errorf("%s: key %s does not match the client certificate %s: give the key the certificate was made for", p.label, p.key, p.cert)
		}
		// crypto/tls says what it could not parse, not the bytes it met.
		return tls.Certificate{}, fmt.Errorf("%s: key %s or client certificate %s: %w", p.label, p.key, p.cert, err)
	}
	return pair, nil
}

// checkCertPEM says what is wrong with a client certificate file: no PEM certificate, or
// one that does not parse.
func checkCertPEM(data []byte) error {
	found := false
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			return errors.New("it holds a private key: give the certificate here and its key in its own file")
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("malformed certificate: %w", err)
		}
		found = true
	}
	if !found {
		return errors.New("no PEM certificate in it (-----BEGIN CERTIFICATE-----)")
	}
	return nil
}

// checkKeyPEM says what is wrong with a key file without quoting it: no PEM key, a key
// encrypted with a passphrase, or one that does not parse.
func checkKeyPEM(data []byte) error {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return errors.New("no PEM private key in it (-----BEGIN PRIVATE KEY-----, or RSA or EC PRIVATE KEY)")
		}
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
			return errors.New("the key is encrypted with a passphrase, which flatbed cannot ask for: decrypt it into a file only flatbed's user can read (openssl pkey -in KEY -out KEY.plain)")
		case b.Type == "PRIVATE KEY" || strings.HasSuffix(b.Type, " PRIVATE KEY"):
			if !parsesAsKey(b.Bytes) {
				return fmt.Errorf("malformed %s (not PKCS #8, PKCS #1 or SEC 1)", strings.ToLower(b.Type))
			}
			return nil
		}
	}
}

// parsesAsKey says der is a private key in one of the forms crypto/tls reads.
func parsesAsKey(der []byte) bool {
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return true
	}
	_, err := x509.ParseECPrivateKey(der)
	return err == nil
}
