package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flatbed.dev/pkg/imagegen"
)

// A wrong command line gets the usage text and status 2; a command that ran and failed
// says what failed and what to do, without the usage text, with status 1 or DUCC's 101-104.
func TestUsageErrorsAndRuntimeFailures(t *testing.T) {
	dir := t.TempDir()
	wl := filepath.Join(dir, "wishlist.yaml")
	if err := os.WriteFile(wl, []byte("version: 1\ncvmfs_repo: 'r.example.org'\ninput: ['http://127.0.0.1:5055/demo/hello:1.0']\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	closed := freeAddr(t)
	state := filepath.Join(dir, "state")
	tests := []struct {
		name string
		args []string
		code int
		want []string // each in stderr
	}{
		{"unknown command", []string{"frobnicate"}, exitUsage, []string{`unknown command "frobnicate"`}},
		{"no wishlist", []string{"convert"}, exitUsage, []string{"accepts 1 arg(s), received 0"}},
		{"two wishlists", []string{"convert", wl, wl}, exitUsage, []string{"accepts 1 arg(s), received 2"}},
		{"unknown flag", []string{"convert", wl, "--bogus"}, exitUsage, []string{"unknown flag: --bogus"}},
		{"bad flag value", []string{"convert", wl, "--max-attempts", "x"}, exitUsage, []string{`invalid argument "x"`}},
		{"unknown service", []string{"serve", "nosuch"}, exitUsage, []string{`unknown service "nosuch"`}},
		{"bad --nats-listen", []string{"serve", "--nats-listen", "nonsense", "--state-dir", state}, exitUsage, []string{`--nats-listen "nonsense"`}},

		{"REPO given as a path", []string{"gc", "/cvmfs/unpacked.cern.ch", "--store-root", dir}, exitParseWishlist,
			[]string{`"/cvmfs/unpacked.cern.ch"`, "give --store-root /cvmfs unpacked.cern.ch"}},
		{"REPO given as a path to convert", []string{"convert-single-image", "http://127.0.0.1:5055/demo/hello:1.0", "/srv/store/r.example.org"}, exitParseWishlist,
			[]string{"give --store-root /srv/store r.example.org"}},
		{"no front door token", []string{"wish", "ls", "--state-dir", filepath.Join(dir, "fresh")}, exitSomeFailed,
			[]string{"no front door token at " + filepath.Join(dir, "fresh", "frontdoor.token"), "flatbed serve frontdoor", "--token-file"}},
		{"wishlist missing", []string{"convert", filepath.Join(dir, "missing.yaml")}, exitReadWishlist, []string{"missing.yaml"}},
		{"no NATS server", []string{"convert", wl, "--nats", "nats://" + closed, "--nats-wait", "300ms", "--state-dir", state},
			exitSomeFailed, []string{"no NATS server answered at nats://" + closed + " within 300ms", "start it first"}},
		{"NATS password not shown", []string{"convert", wl, "--nats", "nats://robot:s3cret-pw@" + closed, "--nats-wait", "100ms", "--state-dir", state},
			exitSomeFailed, []string{"nats://robot:xxxxx@" + closed}},
		{"metrics port in use", []string{"serve", "--metrics-addr", taken.Addr().String(), "--state-dir", state},
			exitSomeFailed, []string{"metrics address " + taken.Addr().String(), "address already in use", "choose a free address with --metrics-addr"}},
		{"NATS listen port in use", []string{"serve", "--nats-listen", taken.Addr().String(), "--state-dir", state},
			exitSomeFailed, []string{"--nats-listen " + taken.Addr().String() + ": the address is in use", "join it with --nats nats://" + taken.Addr().String(), "choose another address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			code := run(ctx, tt.args, &stdout, &stderr)
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %s: a failure this simple must show at once", took)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tt.code, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if usage := strings.Contains(stderr.String(), "usage: flatbed"); usage != (tt.code == exitUsage) {
				t.Errorf("usage text shown = %v for exit %d:\n%s", usage, tt.code, stderr.String())
			}
			if strings.Contains(stderr.String(), "s3cret-pw") {
				t.Errorf("the NATS password is in the output:\n%s", stderr.String())
			}
		})
	}
}

// The help of every converting command lists every exit status.
func TestHelpListsExitCodes(t *testing.T) {
	for _, cmd := range []string{"convert", "convert-single-image", "demo"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{cmd, "--help"}, &stdout, &stderr); code != 0 {
			t.Fatalf("%s --help: exit %d\n%s", cmd, code, stderr.String())
		}
		for _, code := range []int{0, exitSomeFailed, exitUsage, exitNoPassword, exitReadWishlist, exitParseWishlist, exitNoRepository, 130} {
			if !strings.Contains(stdout.String(), fmt.Sprintf("\n  %-3d  ", code)) {
				t.Errorf("%s --help does not list exit status %d:\n%s", cmd, code, stdout.String())
			}
		}
	}
}

// The wishlist the repository ships for the README's examples is the demo's.
func TestExampleWishlistIsTheDemos(t *testing.T) {
	b, err := os.ReadFile("../../examples/wishlist.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := demoWishlist(DemoRegistryAddr, imagegen.Demo()); string(b) != want {
		t.Errorf("examples/wishlist.yaml is not what flatbed demo writes for %s: write it as\n%s", DemoRegistryAddr, want)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
