package registry

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// AuthRegistriesEnv is DUCC's comma-separated list of names R, each with
// DUCC_<R>_IDENT (part of the registry address to match), DUCC_<R>_USER
// and DUCC_<R>_PASS: credentials for pulling from input registries; or, instead of
// the credentials, DUCC_<R>_PROXY: a pull-through proxy of the registry (see proxy.go).
const AuthRegistriesEnv = "DUCC_AUTH_REGISTRIES"

type envEntry struct {
	name, ident string
	auth        basic
	proxy       string // DUCC_<R>_PROXY, "" for none
}

// envEntries reads DUCC_AUTH_REGISTRIES; problems name the missing
// variables, never their values.
func envEntries() (entries []envEntry, problems []string) {
	for _, r := range strings.Split(os.Getenv(AuthRegistriesEnv), ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		e := envEntry{
			name:  r,
			ident: os.Getenv("DUCC_" + r + "_IDENT"),
			auth:  basic{user: os.Getenv("DUCC_" + r + "_USER"), password: os.Getenv("DUCC_" + r + "_PASS")},
			proxy: strings.TrimSpace(os.Getenv("DUCC_" + r + "_PROXY")),
		}
		// As DUCC: an identity, and credentials or a proxy.
		if e.ident == "" || ((e.auth.user == "" || e.auth.password == "") && e.proxy == "") {
			problems = append(problems, fmt.Sprintf("%s names %q: set DUCC_%s_IDENT, and DUCC_%s_USER and DUCC_%s_PASS or DUCC_%s_PROXY", AuthRegistriesEnv, r, r, r, r, r))
			continue
		}
		e.ident = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(e.ident, "https://"), "http://"), "/")
		entries = append(entries, e)
	}
	return entries, problems
}

// CheckEnv reports an incomplete DUCC_AUTH_REGISTRIES set-up (DUCC refuses
// to start then); Options skips incomplete entries.
func CheckEnv() error {
	if _, problems := envEntries(); len(problems) > 0 {
		return fmt.Errorf("registry credentials: %s", strings.Join(problems, "; "))
	}
	return nil
}

type envKeychain []envEntry

func (k envKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), target)
}

func (k envKeychain) ResolveContext(_ context.Context, target authn.Resource) (authn.Authenticator, error) {
	for _, e := range k {
		if e.auth.user != "" && strings.Contains(target.String(), e.ident) {
			return e.auth, nil
		}
	}
	return authn.Anonymous, nil
}
