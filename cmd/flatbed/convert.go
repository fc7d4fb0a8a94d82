package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/notification"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/wishlist"
)

// convertOpts are the per-run DUCC flags.
type convertOpts struct {
	skipThin      bool
	convertAgain  bool
	skipPodman    bool
	multiArch     bool
	timeout       time.Duration
	waitForStages bool
}

func (o *convertOpts) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVarP(&o.skipThin, "skip-thin-image", "i", false, "do not push thin images")
	f.BoolVarP(&o.convertAgain, "convert-again", "g", false, "convert images the store already holds")
	f.BoolVarP(&o.skipPodman, "skip-podman", "p", false, "do not list the images in the podman store (podmanStore/)")
	f.BoolVarP(&o.multiArch, "multi-arch", "m", false, "convert every linux platform of a multi-arch image, each under .multiarch/, the public path a variant symlink through $(CVMFS_ARCH) (default: the host's platform only)")
	f.DurationVar(&o.timeout, "timeout", 2*time.Hour, "give up waiting for results after this long")
	f.BoolVar(&o.waitForStages, "wait-for-stages", false, "with --nats: submit the wishes even when some stage has no worker yet, and wait for it (default: fail at once, naming the stage)")
}

func newConvert(g *globals) *cobra.Command {
	o := &convertOpts{}
	cmd := &cobra.Command{
		Use:   "convert WISHLIST",
		Short: "Convert every image of a DUCC wishlist",
		Long: `Convert every image of a DUCC v1 wishlist into the store.

Without --nats the whole pipeline runs in this process over an embedded NATS server.
With --nats the wishes are published to that server, and the services started with
'flatbed serve' do the work; this command waits for their results.

` + exitCodesHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wl, err := loadWishlist(args[0])
			if err != nil {
				return err
			}
			return convert(cmd.Context(), g, o, wl)
		},
	}
	o.flags(cmd)
	return cmd
}

func newConvertSingle(g *globals) *cobra.Command {
	o := &convertOpts{}
	var output string
	cmd := &cobra.Command{
		Use:   "convert-single-image IMAGE REPO",
		Short: "Convert one image into repository REPO",
		Long: `Convert one image into repository REPO, as a wishlist of one image would.

` + exitCodesHelp,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				o.skipThin = true
			}
			// The arguments are a one-image wishlist: check them first, to name them in errors.
			if _, err := imageref.Parse(args[0]); err != nil {
				return &exitError{exitParseWishlist, fmt.Errorf("IMAGE argument: %w", err)}
			}
			if err := checkRepoArg(g, args[1]); err != nil {
				return err
			}
			if output != "" {
				if err := imageref.CheckFormat(output); err != nil {
					return &exitError{exitParseWishlist, fmt.Errorf("--output-format: %w", err)}
				}
			}
			data := fmt.Sprintf("version: 1\nuser: ''\ncvmfs_repo: %q\ninput:\n  - %q\n", args[1], args[0])
			if output != "" {
				data += fmt.Sprintf("output_format: %q\n", output)
			}
			wl, err := wishlist.Parse([]byte(data), "convert-single-image arguments")
			if err != nil {
				return &exitError{exitParseWishlist, err}
			}
			return convert(cmd.Context(), g, o, wl)
		},
	}
	o.flags(cmd)
	cmd.Flags().StringVar(&output, "output-format", "", "thin image name format (default: no thin image)")
	return cmd
}

// loadWishlist reads a wishlist with DUCC's exit codes, and the extra ignoreErrors file
// DUCC reads from $DUCC_IGNORE_ERRORS_FILE.
func loadWishlist(path string) (*wishlist.Wishlist, error) {
	wl, err := wishlist.Load(path)
	if err != nil {
		if errors.Is(err, wishlist.ErrRead) {
			return nil, &exitError{exitReadWishlist, err}
		}
		return nil, &exitError{exitParseWishlist, err}
	}
	if f := os.Getenv(wishlist.IgnoreErrorsFileEnv); f != "" {
		if err := wl.MergeIgnoreErrorsFile(f); err != nil {
			code := exitReadWishlist
			if errors.Is(err, wishlist.ErrParse) {
				code = exitParseWishlist
			}
			return nil, &exitError{code, fmt.Errorf("%s=%s: %w", wishlist.IgnoreErrorsFileEnv, f, err)}
		}
	}
	return wl, nil
}

// convert submits one wish per input image and waits until each has a result.
func convert(ctx context.Context, g *globals, o *convertOpts, wl *wishlist.Wishlist) (err error) {
	intr := notifyInterrupt()
	defer intr.stop()
	var thinNames []string
	if !o.skipThin {
		// Every thin-image name is made before anything starts, so that a format that does
		// not fit some input is a wishlist error (103) naming it, not a failure later.
		if thinNames, err = wl.Outputs(); err != nil {
			return &exitError{exitParseWishlist, err}
		}
	}
	repoRoot := filepath.Join(g.storeRoot, wl.CvmfsRepo)
	if err := ensureRepository(g.storeRoot, repoRoot); err != nil {
		return err
	}
	if err := registry.CheckEnv(); err != nil {
		return &exitError{exitNoPassword, err}
	}
	// The wildcards are expanded here, at the front door: no event carries one. Each tag a
	// wildcard gave gets its thin-image name, $(tag) being that tag.
	imgs, gaveNone := expandWildcards(ctx, g, wl)
	if ctx.Err() != nil {
		return intr.interrupted(len(wl.Input))
	}
	if !o.skipThin {
		if thinNames, err = wl.OutputsOf(imgs); err != nil {
			return &exitError{exitParseWishlist, err}
		}
	}
	if g.notification != "" {
		// Not ":=": the deferred end line must see the named return err, not a shadow of it.
		var lines *notification.File
		if lines, err = notification.Open(g.notification); err != nil {
			return err
		}
		started := time.Now()
		_ = lines.Write(ctx, map[string]string{notification.FieldAction: notification.ActionStartDucc})
		defer func() {
			end := notification.Line{notification.FieldAction: notification.ActionEndDucc}.Elapsed(started).Status(err)
			_ = lines.Write(context.WithoutCancel(ctx), end)
			lines.Close()
		}()
	}
	var services []string
	if g.natsURL == "" {
		services = allServices
	}
	if len(services) > 0 && isTerminal(os.Stderr) {
		// On a terminal the in-process ingester's bytes are drawn as bars; the log lines
		// and results are printed above them.
		stop := g.startProgress(os.Stderr)
		defer stop()
	}
	p, err := startPipeline(ctx, g, services, "")
	if err != nil {
		if ctx.Err() != nil {
			return intr.interrupted(len(wl.Input))
		}
		return err
	}
	defer p.close()
	js := p.bus.JetStream()
	if g.natsURL != "" {
		if err := checkStages(ctx, g.log, js, g.natsURL, o.waitForStages); err != nil {
			if ctx.Err() != nil {
				return intr.interrupted(len(wl.Input))
			}
			return err
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if len(services) > 0 {
		go func() {
			if err := p.bus.Run(runCtx); err != nil {
				g.log.Error("pipeline stopped", "err", err)
			}
		}()
		<-p.bus.Running()
	}
	g.log.Info("converting", "wishlist", wl.Path, "images", len(imgs), "repository", repoRoot)
	sub := &submission{g: g, o: o, bus: p.bus, intr: intr, inProcess: len(services) > 0}
	t, err := sub.run(ctx, runCtx, wl, imgs, thinNames, gaveNone)
	if err != nil {
		return err
	}
	fmt.Printf("repository: %s\n", repoRoot)
	if t.failed > 0 {
		return &exitError{exitSomeFailed, fmt.Errorf("%d of %d image(s) failed", t.failed, len(imgs)+len(gaveNone))}
	}
	return nil
}

// ensureRepository creates the repository directory in a local store. Under /cvmfs the
// repository must exist already (a CVMFS repository is created by cvmfs_server, not by us).
func ensureRepository(storeRoot, repoRoot string) error {
	if fi, err := os.Stat(repoRoot); err == nil && fi.IsDir() {
		return nil
	}
	if filepath.Clean(storeRoot) == "/cvmfs" {
		return &exitError{exitNoRepository, fmt.Errorf("repository %s does not exist: create it with cvmfs_server mkfs, or check cvmfs_repo", repoRoot)}
	}
	if err := os.MkdirAll(repoRoot, 0o755); err != nil {
		return &exitError{exitNoRepository, fmt.Errorf("creating repository %s: %w", repoRoot, err)}
	}
	return nil
}
