package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/spf13/cobra"

	"flatbed.dev/pkg/imagegen"
)

func newDemo(g *globals) *cobra.Command {
	o := &convertOpts{}
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a local registry with generated images and convert them (no internet needed)",
		Long: `Start a registry on a loopback port (Debian's docker-registry when installed, else an
in-process one), push generated demo images to it, write a demo wishlist and convert it
with the whole pipeline over an embedded NATS server. Thin images are pushed back to the
same registry.

The registry listens on ` + DemoRegistryAddr + ` when that port is free. With --keep-registry it must
be, and it stays up after the conversion until Ctrl-C or SIGTERM: the examples in README.md
and examples/wishlist.yaml use it.

` + exitCodesHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			host, stop, err := startDemoRegistry(ctx, g, keep)
			if err != nil {
				return err
			}
			defer stop()
			imgs := imagegen.Demo()
			if err := imagegen.Push(ctx, host, imgs); err != nil {
				return fmt.Errorf("pushing demo images to %s: %w", host, err)
			}
			if err := os.MkdirAll(g.stateDir, 0o755); err != nil {
				return err
			}
			path := filepath.Join(g.stateDir, "demo-wishlist.yaml")
			if err := os.WriteFile(path, []byte(demoWishlist(host, imgs)), 0o644); err != nil {
				return err
			}
			fmt.Printf("registry:  http://%s (%d demo images)\nwishlist:  %s\nstore:     %s\n\n", host, len(imgs), path, g.storeRoot)
			wl, err := loadWishlist(path)
			if err != nil {
				return err
			}
			if err := convert(ctx, g, o, wl); err != nil {
				return err
			}
			repo := filepath.Join(g.storeRoot, wl.CvmfsRepo)
			fmt.Printf("\nTry:\n  ls -la %s/%s/demo\n  ls %s/.layers/*/\n  cat %s/%s/demo/hello:1.0/etc/os-release\n",
				repo, host, repo, repo, host)
			if !keep {
				fmt.Printf("\nThe registry stops now. The examples in README.md use it: keep it up with\n  %s demo --keep-registry\n", os.Args[0])
				return nil
			}
			fmt.Printf("\nThe registry stays up at http://%s for the examples in README.md (examples/wishlist.yaml); Ctrl-C stops it.\n", host)
			<-ctx.Done()
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flags().BoolVar(&keep, "keep-registry", false, "keep the registry up on "+DemoRegistryAddr+" after converting, until Ctrl-C (for the README's examples)")
	return cmd
}

// demoWishlist is the wishlist of the demo images served by host; examples/wishlist.yaml is
// the one for DemoRegistryAddr.
func demoWishlist(host string, imgs []imagegen.Named) string {
	var b strings.Builder
	b.WriteString("# The demo images, as 'flatbed demo' pushes them to its registry (see README.md).\n")
	b.WriteString("version: 1\nuser: demo\ncvmfs_repo: 'demo.flatbed.local'\noutput_format: '$(scheme)://$(registry)/thin/$(repository):$(tag)'\ninput:\n")
	for _, img := range imgs {
		fmt.Fprintf(&b, "  - 'http://%s/%s:%s'\n", host, img.Name, img.Tag)
	}
	return b.String()
}

// DemoRegistryAddr is where the demo registry listens when that port is free.
const DemoRegistryAddr = "127.0.0.1:5055"

// startDemoRegistry runs the distribution registry on a free loopback port, or an in-process
// registry when docker-registry is not installed.
func startDemoRegistry(ctx context.Context, g *globals, fixed bool) (host string, stop func(), err error) {
	// A fixed port when free: the images keep their names, so a second demo finds them
	// already converted instead of converting copies under a new registry name.
	ln, err := net.Listen("tcp", DemoRegistryAddr)
	if err != nil && fixed {
		return "", nil, fmt.Errorf("--keep-registry: %s is in use (by another 'flatbed demo --keep-registry'?): the README's examples expect the demo registry there; stop what listens there and run the demo again (%w)", DemoRegistryAddr, err)
	}
	if err != nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return "", nil, err
		}
	}
	host = ln.Addr().String()
	bin, lookErr := exec.LookPath("docker-registry")
	if lookErr != nil {
		g.log.Info("docker-registry not installed; using an in-process registry for the demo")
		// The registry logs every request: only at debug level, through our logger.
		srv := &http.Server{Handler: ggcrregistry.New(ggcrregistry.Logger(slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)))}
		go srv.Serve(ln)
		return host, func() { srv.Close() }, nil
	}
	ln.Close()
	dir, err := os.MkdirTemp("", "flatbed-demo-registry-")
	if err != nil {
		return "", nil, err
	}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), host)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o644); err != nil {
		return "", nil, err
	}
	c := exec.CommandContext(ctx, bin, "serve", filepath.Join(dir, "config.yml"))
	c.Stdout, c.Stderr = nil, nil
	if err := c.Start(); err != nil {
		return "", nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	stop = func() {
		_ = c.Process.Kill()
		_ = c.Wait()
		_ = os.RemoveAll(dir)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + host + "/v2/"); err == nil {
			resp.Body.Close()
			g.log.Info("demo registry started", "binary", bin, "addr", host)
			return host, stop, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("%s did not answer on %s within 15s", bin, host)
}
