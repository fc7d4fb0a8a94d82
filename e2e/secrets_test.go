package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/e2e/authproxy"
	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
)

// credentialEnv are the variables through which credentials reach flatbed; runs with
// credentials start from an environment without any of them.
var credentialEnv = []string{"DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "HOME", "DUCC_", "DOCKER2CVMFS_"}

// runFlatbedEnv is runFlatbed with extra environment variables and the credential
// variables of the test process removed; it returns the exit status instead of checking it.
func runFlatbedEnv(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flatbedBin, args...)
	for _, kv := range os.Environ() {
		keep := true
		for _, prefix := range credentialEnv {
			if strings.HasPrefix(kv, prefix) && (strings.HasSuffix(prefix, "_") || strings.HasPrefix(kv, prefix+"=")) {
				keep = false
			}
		}
		if keep {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("flatbed %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return code, out.String(), errb.String()
}

// dockerConfig writes a docker config.json with credentials for host and returns its directory
// (for DOCKER_CONFIG).
func dockerConfig(t *testing.T, host, user, password string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"auths": map[string]any{host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password)),
	}}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// secretRun is one flatbed run with credentials and where it left its traces.
type secretRun struct {
	name                   string
	stdout, stderr         string
	notif, stateDir, store string
}

// TestSecretsNeverLeak converts images through a registry behind the Docker token flow with
// credentials given the ways DUCC users give them (DUCC_AUTH_REGISTRIES and the wishlist's
// user with DUCC_OUTPUT_REGISTRY_PASS; a docker config file), and with a wrong password, all
// with debug logs; then it greps everything flatbed wrote - stdout, the logs, the
// notification file, every event in the JetStream state, the store - for the passwords,
// the tokens and base64("user:password").
func TestSecretsNeverLeak(t *testing.T) {
	reg := harness.StartRegistry(t)
	demo := imagegen.Demo()
	if err := imagegen.Push(context.Background(), reg.Host, demo); err != nil {
		t.Fatal(err)
	}
	const user = "e2e-robot"
	password := authproxy.Secret("s3cr3t-Pa55-")
	wrong := authproxy.Secret("wr0ng-Pa55-")
	proxy := authproxy.Start(t, reg.Host, user, password)

	wishlist := func(t *testing.T, thinPrefix string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "version: 1\nuser: %s\ncvmfs_repo: '%s'\noutput_format: '$(scheme)://$(registry)/%s/$(repository):$(tag)'\ninput:\n", user, mpRepo, thinPrefix)
		for _, img := range demo {
			fmt.Fprintf(&b, "  - 'http://%s/%s'\n", proxy.Host, img.Ref())
		}
		path := filepath.Join(t.TempDir(), "wishlist.yaml")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var runs []secretRun
	parent := t // the subtests' temp dirs go when they end; the runs' traces are read after
	run := func(t *testing.T, want int, env []string, wl string, extra ...string) secretRun {
		t.Helper()
		r := secretRun{name: t.Name(), notif: filepath.Join(parent.TempDir(), "notifications.jsonl"), stateDir: parent.TempDir(), store: parent.TempDir()}
		env = append(env, "HOME="+parent.TempDir())
		args := append([]string{"convert", wl, "-v", "-n", r.notif, "--store-root", r.store, "--state-dir", r.stateDir, "--timeout", "3m"}, extra...)
		code, stdout, stderr := runFlatbedEnv(t, env, args...)
		r.stdout, r.stderr = stdout, stderr
		t.Logf("stdout:\n%s", stdout)
		runs = append(runs, r)
		if code != want {
			t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr (tail):\n%s", code, want, stdout, lastLines(stderr, 40))
		}
		return r
	}
	checkThin := func(t *testing.T, prefix string) {
		t.Helper()
		for _, img := range demo {
			ref, err := name.ParseReference(reg.Host+"/"+prefix+"/"+img.Ref(), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := remote.Head(ref); err != nil {
				t.Errorf("thin image %s was not pushed: %v", ref, err)
			}
		}
	}

	t.Run("DUCC environment", func(t *testing.T) {
		before := proxy.Stats()
		env := []string{
			"DUCC_AUTH_REGISTRIES=E2E",
			"DUCC_E2E_IDENT=" + proxy.Host,
			"DUCC_E2E_USER=" + user,
			"DUCC_E2E_PASS=" + password,
			"DUCC_OUTPUT_REGISTRY_PASS=" + password,
			"DOCKER_CONFIG=" + t.TempDir(), // empty: no fall-back credentials
		}
		r := run(t, 0, env, wishlist(t, "thin-ducc"))
		if n := strings.Count(r.stdout, "converted "); n != len(demo) {
			t.Errorf("%d images converted, want %d:\n%s", n, len(demo), r.stdout)
		}
		checkThin(t, "thin-ducc")
		if after := proxy.Stats(); after.Granted == before.Granted || after.Proxied == before.Proxied {
			t.Errorf("the token flow was not used: %+v -> %+v", before, after)
		}
	})

	t.Run("docker config", func(t *testing.T) {
		before := proxy.Stats()
		env := []string{"DOCKER_CONFIG=" + dockerConfig(t, proxy.Host, user, password)}
		r := run(t, 0, env, wishlist(t, "thin-docker"))
		if n := strings.Count(r.stdout, "converted "); n != len(demo) {
			t.Errorf("%d images converted, want %d:\n%s", n, len(demo), r.stdout)
		}
		checkThin(t, "thin-docker")
		if after := proxy.Stats(); after.Granted == before.Granted || after.Proxied == before.Proxied {
			t.Errorf("the token flow was not used: %+v -> %+v", before, after)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		before := proxy.Stats()
		env := []string{"DOCKER_CONFIG=" + dockerConfig(t, proxy.Host, user, wrong)}
		r := run(t, 1, env, wishlist(t, "thin-wrong"), "--max-attempts", "2")
		for _, img := range demo {
			line := "FAILED            http://" + proxy.Host + "/" + img.Ref() + ": "
			i := strings.Index(r.stdout, line)
			if i < 0 {
				t.Errorf("no failure line for %s:\n%s", img.Ref(), r.stdout)
				continue
			}
			reason, _, _ := strings.Cut(r.stdout[i+len(line):], "\n")
			// flatbed's own words, not just the registry's
			for _, want := range []string{"refused access", "check the credentials", "401"} {
				if !strings.Contains(reason, want) {
					t.Errorf("the reason for %s does not say %q: %s", img.Ref(), want, reason)
				}
			}
		}
		if after := proxy.Stats(); after.Denied == before.Denied {
			t.Errorf("no token request was denied: %+v -> %+v", before, after)
		}
		// Nothing half-done: no layer, flat tree, public path or temporary in the store.
		filepath.WalkDir(r.store, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == r.store {
				return nil
			}
			switch name := d.Name(); {
			case strings.HasPrefix(name, ".tmp-"), name == "layerfs", d.Type()&fs.ModeSymlink != 0:
				t.Errorf("a run refused by the registry left %s in the store", p)
			case filepath.Base(filepath.Dir(filepath.Dir(p))) == ".flat":
				t.Errorf("a run refused by the registry left the flat tree %s", p)
			}
			return nil
		})
	})

	t.Run("wrong push password", func(t *testing.T) {
		env := []string{
			"DUCC_AUTH_REGISTRIES=E2E",
			"DUCC_E2E_IDENT=" + proxy.Host,
			"DUCC_E2E_USER=" + user,
			"DUCC_E2E_PASS=" + password,
			"DUCC_OUTPUT_REGISTRY_PASS=" + wrong,
			"DOCKER_CONFIG=" + t.TempDir(),
		}
		// The pull credential (DUCC_AUTH_REGISTRIES) matches the proxy host too, and it is
		// looked up before the docker config but after the wishlist user's: the push must use
		// the wrong one and fail.
		r := run(t, 1, env, wishlist(t, "thin-wrong-push"), "--max-attempts", "2")
		if strings.Count(r.stdout, "FAILED") != len(demo) || strings.Count(r.stdout, "UNAUTHORIZED") < len(demo) {
			t.Errorf("the thin-image push with a wrong password does not fail with an authentication reason:\n%s", r.stdout)
		}
	})

	secrets := map[string]string{
		"the password":                    password,
		"the wrong password":              wrong,
		`base64("user:password")`:         proxy.BasicAuth(),
		`base64("user:wrong password")`:   base64.StdEncoding.EncodeToString([]byte(user + ":" + wrong)),
		"the password in base64":          base64.StdEncoding.EncodeToString([]byte(password)),
		"the password in URL-safe base64": base64.URLEncoding.EncodeToString([]byte(user + ":" + password)),
	}
	// E2E_SECRET_SELFTEST=1 proves the search works: the user name is in the events, so the
	// test must then fail, naming where it found it.
	if os.Getenv("E2E_SECRET_SELFTEST") != "" {
		secrets["the user name (self-test: must be found)"] = user
	}
	for i, tok := range proxy.Tokens() {
		secrets[fmt.Sprintf("token %d", i)] = tok
	}
	if len(proxy.Tokens()) == 0 {
		t.Error("the proxy issued no token")
	}
	for _, r := range runs {
		for where, text := range traces(t, r) {
			for what, secret := range secrets {
				if i := strings.Index(text, secret); i >= 0 {
					t.Errorf("%s: %s leaks %s: …%s…", r.name, where, what, excerpt(text, i, len(secret)))
				}
			}
		}
	}
}

func excerpt(s string, i, n int) string {
	from, to := max(0, i-80), min(len(s), i+n+80)
	return s[from:to]
}

// traces returns everything one run wrote, by where it was found.
func traces(t *testing.T, r secretRun) map[string]string {
	t.Helper()
	out := map[string]string{"stdout": r.stdout, "stderr (logs)": r.stderr}
	if !strings.Contains(r.stderr, `"level":"DEBUG"`) {
		t.Errorf("%s: no debug log lines on stderr: the secret check would miss what -v logs", r.name)
	}
	b, err := os.ReadFile(r.notif)
	if err != nil || len(b) == 0 {
		t.Errorf("%s: no notification file: %v", r.name, err)
	}
	out["notification file"] = string(b)
	for where, text := range storedEvents(t, filepath.Join(r.stateDir, "jetstream")) {
		out[where] = text
	}
	for _, root := range []string{r.store, r.stateDir} {
		metadata := 0
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			if strings.Contains(path, "/.metadata") {
				metadata++
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out["file "+path] = string(b)
			return nil
		})
		if err != nil {
			t.Errorf("%s: walking %s: %v", r.name, root, err)
		}
		if root == r.store && metadata == 0 && !strings.Contains(r.name, "wrong_password") {
			t.Errorf("%s: no .metadata file in the store: the secret check would miss them", r.name)
		}
	}
	return out
}

// storedEvents reads every message of the FLATBED stream from a finished run's JetStream
// state: subject, headers and data, by "event <seq> <subject>".
func storedEvents(t *testing.T, jsDir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for i, m := range readStoredEvents(t, jsDir) {
		var b strings.Builder
		fmt.Fprintf(&b, "%s\n", m.Subject)
		for k, vs := range m.Header {
			fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(vs, ", "))
		}
		b.Write(m.Data)
		out[fmt.Sprintf("event %d %s", i+1, m.Subject)] = b.String()
	}
	if len(out) == 0 {
		t.Errorf("no event in %s", jsDir)
	}
	return out
}
