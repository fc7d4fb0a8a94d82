// Package s3test starts a real S3-compatible server for tests: npm's s3rver (installed by
// scripts/install-test-deps.sh), on a free loopback port, with a bucket.
package s3test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Credentials s3rver accepts.
const (
	AccessKey = "S3RVER"
	SecretKey = "S3RVER"
)

// Server is a running s3rver.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Bucket   string
	Dir      string // where it keeps the objects
}

// Remote is the s3:// remote of prefix in the server's bucket.
func (s *Server) Remote(prefix string) string {
	return "s3://" + s.Bucket + "/" + prefix + "?region=us-east-1&endpoint=" + s.Endpoint
}

var listening = regexp.MustCompile(`listening on 127\.0\.0\.1:(\d+)`)

// Start starts s3rver with one bucket, stopped when t ends, and sets the AWS_ variables for
// this test (t.Setenv) to the credentials it accepts. Without s3rver the test is skipped,
// unless CI is set (then it fails).
func Start(t testing.TB, bucket string) *Server {
	t.Helper()
	bin, err := exec.LookPath("s3rver")
	if err != nil {
		msg := "s3rver is not installed (scripts/install-test-deps.sh: npm install -g s3rver)"
		if v, ok := os.LookupEnv("CI"); ok && v != "" {
			if b, err := strconv.ParseBool(v); err != nil || b {
				t.Fatal(msg + "; CI is set, so it is required")
			}
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-d", dir, "-a", "127.0.0.1", "-p", "0", "--configure-bucket", bucket, "--no-vhost-buckets")
	var stderr bytes.Buffer // s3rver logs aborted uploads there; shown when the test fails
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		select {
		case err := <-exited: // it died while the test ran: say so, whatever the test's outcome
			t.Errorf("s3rver exited while the test ran (%v); its stderr:\n%s", err, stderr.String())
			return
		default:
		}
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("s3rver's stderr:\n%s", stderr.String())
		}
	})
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		defer func() {
			_, _ = io.Copy(io.Discard, out) // keep draining: a blocked stdout would stall the server
			exited <- cmd.Wait()
		}()
		sent := false
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil && !sent {
				port <- m[1]
				sent = true
			}
		}
	}()
	select {
	case p := <-port:
		t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
		t.Setenv("AWS_SESSION_TOKEN", "")
		return &Server{Endpoint: "http://127.0.0.1:" + p, Bucket: bucket, Dir: dir}
	case <-time.After(30 * time.Second):
		t.Fatal("s3rver did not say it was listening within 30s")
	}
	return nil
}
