package harness

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"flatbed.dev/events/porttest"
)

// Registry is a docker-registry (distribution v2.8) process serving plain
// http (https WithTLS) on a loopback port, with its storage in a test temp dir.
type Registry struct {
	Host      string // "127.0.0.1:port"
	Dir       string // storage root directory
	AccessLog string // file with the access log (the process' stdout)
	ServerLog string // file with the server log (the process' stderr)

	cmd    *exec.Cmd
	syncs  atomic.Int64
	stop   func()
	tls    *TLSFiles    // nil: plain http
	client *http.Client // the harness' own requests (readiness, access log markers)

	extraConfig string // appended to config.yml (WithConfig)
}

// Stop kills the registry now (it is killed at the end of the test otherwise): what still
// works afterwards needed nothing from it.
func (r *Registry) Stop() { r.stop() }

// URL returns "http://" + Host, or "https://" + Host for a registry started WithTLS.
func (r *Registry) URL() string {
	if r.tls != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

const registryConfig = `version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: flatbed-e2e-harness
`

// StartRegistry starts /usr/bin/docker-registry ("docker-registry serve
// config.yml") and waits until GET /v2/ answers; the process is killed on
// t.Cleanup. Without docker-registry installed the test is skipped, or fails
// when env CI is set.
func StartRegistry(t testing.TB, opts ...RegistryOption) *Registry {
	t.Helper()
	bin := requireTool(t, "docker-registry", "docker-registry")
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		r, err := startRegistry(t, bin, opts)
		if err == nil {
			return r
		}
		last = err // e.g. the free port was taken meanwhile: try another
	}
	t.Fatalf("docker-registry did not start: %v", last)
	return nil
}

func startRegistry(t testing.TB, bin string, opts []RegistryOption) (*Registry, error) {
	dir := t.TempDir()
	host, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &Registry{
		Host:      host,
		Dir:       filepath.Join(dir, "storage"),
		AccessLog: filepath.Join(dir, "access.log"),
		ServerLog: filepath.Join(dir, "registry.log"),
		client:    &http.Client{Timeout: time.Second},
	}
	for _, o := range opts {
		o(r)
	}
	config := fmt.Sprintf(registryConfig, r.Dir, host) + r.extraConfig
	if r.tls != nil {
		config += r.tls.config()
		r.client.Transport = r.tls.transport()
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return nil, err
	}
	stdout, err := os.Create(r.AccessLog)
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := os.Create(r.ServerLog)
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	r.cmd = exec.Command(bin, "serve", cfg)
	r.cmd.Stdout, r.cmd.Stderr = stdout, stderr
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- r.cmd.Wait() }()
	stop := func() {
		_ = r.cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(20 * time.Second)
	client := r.client
	for {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(r.ServerLog)
			return nil, fmt.Errorf("docker-registry exited (%v):\n%s", err, log)
		default:
		}
		resp, err := client.Get(r.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(r.ServerLog)
			return nil, fmt.Errorf("GET %s/v2/ did not answer 200 within 20s (last error %v):\n%s", r.URL(), err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.stop = sync.OnceFunc(stop)
	t.Cleanup(r.stop)
	return r, nil
}

// freePort returns "127.0.0.1:port" for a port that was free a moment ago.
func freePort() (string, error) {
	p, err := porttest.Free()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p), nil
}

var errNoSync = errors.New("sync request not in the access log")

// sync makes a marker request and waits until it shows in the access log.
// The registry writes a log line after the handler returns, so a client can
// see the response before the line exists; requests that completed before
// the marker was sent are logged by the time the marker is.
func (r *Registry) sync() ([]byte, error) {
	marker := fmt.Sprintf("%s=%d", syncParam, r.syncs.Add(1))
	resp, err := r.client.Get(r.URL() + "/v2/?" + marker)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(r.AccessLog)
		if err != nil {
			return nil, err
		}
		if strings.Contains(string(b), "?"+marker+" ") {
			return b, nil
		}
		if time.Now().After(deadline) {
			return nil, errNoSync
		}
		time.Sleep(10 * time.Millisecond)
	}
}
