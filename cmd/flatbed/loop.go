package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/notification"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/wishlist"
)

// defaultLoopInterval is the pause between two passes of loop. DUCC's loop command starts
// the next pass at once; the loop.sh that runs DUCC for unpacked.cern.ch waits 10 s between
// two runs of convert. A pass that finds everything converted costs one manifest request
// per image, so some pause keeps a small wishlist from hammering its registries.
const defaultLoopInterval = 10 * time.Second

// actionRemovedFromWishlist is the notification of an image a pass no longer asks for: gone
// from the wishlist, or no longer matched by its wildcard. DUCC has no such line.
const actionRemovedFromWishlist = "removed_from_wishlist"

type loopOpts struct {
	convertOpts
	interval time.Duration
}

func newLoop(g *globals) *cobra.Command {
	o := &loopOpts{}
	cmd := &cobra.Command{
		Use:   "loop WISHLIST",
		Short: "Convert a wishlist pass after pass, reading it again each time",
		Long: `Convert the images of a DUCC v1 wishlist, then again after --interval, for ever: a
wishlist controller. Each pass reads the wishlist anew, expands its wildcard tags against
the registries' tag lists and wishes every image, as convert does; what is already converted
costs a manifest request (the resolver's "already converted"), what is new or has changed
behind its tag is converted. An image the previous pass asked for and this one does not
(removed from the wishlist, or no longer matched by its wildcard) is reported, on stdout, in
the log and in the notification file (action removed_from_wishlist), and not converted
again; its files stay in the store.

A wishlist that cannot be read or parsed at start ends loop with DUCC's 102 or 103; later, it
is reported and the last good one is used until it can be read again. SIGINT or SIGTERM
stops loop: between passes at once, during a pass once the steps in progress have finished
(the wishes not done stay queued); the exit status is then 0.

Without --nats the whole pipeline runs in this process over an embedded NATS server, as for
convert; with --nats the wishes go to that server's services.

Exit status:
  0    stopped by SIGINT or SIGTERM
  1    the run failed to start (NATS unreachable or refusing, a port in use, …)
  2    the command line is wrong (unknown command or flag, bad flag value, argument count)
  101  the registry credentials set-up is incomplete (DUCC_<R>_USER without DUCC_<R>_PASS, …)
  102  the wishlist cannot be read at start (later passes use the last good one)
  103  the wishlist cannot be parsed at start (likewise)
  104  the repository does not exist at start (under /cvmfs: create it with cvmfs_server mkfs)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.interval <= 0 {
				return &exitError{exitUsage, fmt.Errorf("--interval %s: give a pause longer than 0, e.g. 10s", o.interval)}
			}
			return loop(cmd.Context(), g, o, args[0])
		},
	}
	o.convertOpts.flags(cmd)
	cmd.Flags().DurationVar(&o.interval, "interval", defaultLoopInterval, "pause between the end of a pass and the start of the next (--timeout bounds each pass)")
	return cmd
}

// looper is what loop keeps from one pass to the next.
type looper struct {
	g     *globals
	o     *loopOpts
	path  string
	sub   *submission
	lines *notification.File // nil without -n

	good *wishlist.Wishlist   // the last wishlist that could be read and used
	last map[string]loopImage // by whole name: what the last pass asked for
}

type loopImage struct {
	ref   imageref.Ref
	input string // the wishlist's input it came from, as written
}

// loop runs passes until ctx ends, which is not a failure: the exit status is 0.
func loop(ctx context.Context, g *globals, o *loopOpts, path string) error {
	intr := notifyInterrupt()
	defer intr.stop()
	wl, err := loopWishlist(g, o, path)
	if err != nil {
		return err // at start, DUCC's exit codes: nothing good to fall back on
	}
	if err := registry.CheckEnv(); err != nil {
		return &exitError{exitNoPassword, err}
	}
	l := &looper{g: g, o: o, path: path, good: wl}
	if g.notification != "" {
		if l.lines, err = notification.Open(g.notification); err != nil {
			return err
		}
		defer l.lines.Close()
	}
	var services []string
	if g.natsURL == "" {
		services = allServices
	}
	p, err := startPipeline(ctx, g, services, "")
	if err != nil {
		if ctx.Err() != nil {
			return l.stopped(intr)
		}
		return err
	}
	defer p.close()
	if g.natsURL != "" {
		if err := checkStages(ctx, g.log, p.bus.JetStream(), g.natsURL, o.waitForStages); err != nil {
			if ctx.Err() != nil {
				return l.stopped(intr)
			}
			return err
		}
	}
	if len(services) > 0 {
		go func() {
			if err := p.bus.Run(ctx); err != nil {
				g.log.Error("pipeline stopped", "err", err)
			}
		}()
		<-p.bus.Running()
	}
	l.sub = &submission{g: g, o: &o.convertOpts, bus: p.bus, intr: intr, inProcess: len(services) > 0}
	for n := 1; ; n++ {
		l.pass(ctx, n)
		if ctx.Err() != nil {
			return l.stopped(intr)
		}
		g.log.Info("next pass", "in", o.interval)
		sleep(ctx, o.interval)
		if ctx.Err() != nil {
			return l.stopped(intr)
		}
	}
}

// loopWishlist reads the wishlist and checks what convert checks before it starts: every
// input has a thin-image name (unless thin images are skipped) and the repository exists.
func loopWishlist(g *globals, o *loopOpts, path string) (*wishlist.Wishlist, error) {
	wl, err := loadWishlist(path)
	if err != nil {
		return nil, err
	}
	if !o.skipThin {
		if _, err := wl.Outputs(); err != nil {
			return nil, &exitError{exitParseWishlist, err}
		}
	}
	if err := ensureRepository(g.storeRoot, filepath.Join(g.storeRoot, wl.CvmfsRepo)); err != nil {
		return nil, err
	}
	return wl, nil
}

func (l *looper) stopped(intr *interrupt) error {
	name := "the caller"
	if s, ok := intr.signal().(syscall.Signal); ok {
		name = signalName(s)
	}
	l.g.log.Info("loop stopped", "by", name)
	return nil
}

// pass reads the wishlist, reports what it no longer asks for, and wishes everything it asks
// for, waiting for the results.
func (l *looper) pass(ctx context.Context, n int) {
	g, o := l.g, l.o
	started := time.Now()
	if wl, err := loopWishlist(g, o, l.path); err != nil {
		g.log.Error("cannot use the wishlist for this pass; using the last good one, and reading it again next pass",
			"pass", n, "wishlist", l.path, "err", err)
	} else {
		l.good = wl
	}
	wl := l.good
	imgs, gaveNone := expandWildcards(ctx, g, wl)
	if ctx.Err() != nil {
		return
	}
	var thin []string
	if !o.skipThin {
		var err error
		if thin, err = wl.OutputsOf(imgs); err != nil {
			g.log.Error("pass skipped: some image has no thin-image name; fix output_format or the inputs (or loop with -i)", "pass", n, "err", err)
			return
		}
	}
	l.reportRemoved(ctx, wl, imgs, gaveNone)

	g.log.Info("pass", "pass", n, "wishlist", wl.Path, "images", len(imgs), "repository", filepath.Join(g.storeRoot, wl.CvmfsRepo))
	_ = l.lines.Write(ctx, notification.Line{notification.FieldAction: notification.ActionStartDucc})
	runCtx, cancel := context.WithTimeout(ctx, o.timeout)
	t, err := l.sub.run(ctx, runCtx, wl, imgs, thin, gaveNone)
	cancel()
	status := err
	if status == nil && t.failed > 0 {
		status = fmt.Errorf("%d of %d image(s) failed", t.failed, len(imgs)+len(gaveNone))
	}
	_ = l.lines.Write(context.WithoutCancel(ctx), notification.Line{notification.FieldAction: notification.ActionEndDucc}.Elapsed(started).Status(status))
	attrs := []any{"pass", n, "converted", t.converted, "already_converted", t.already, "failed", t.failed, "ignored", t.ignored,
		"took", time.Since(started).Round(time.Millisecond)}
	switch {
	case err != nil && ctx.Err() != nil:
		g.log.Info("pass interrupted; the wishes not done stay queued", append(attrs, "err", err)...)
	case err != nil:
		g.log.Error("pass ended early", append(attrs, "err", err)...)
	default:
		g.log.Info("pass done", attrs...)
	}
}

// reportRemoved reports each image the last pass asked for and this one does not, and
// remembers what this one asks for. A wildcard whose tags could not be listed this pass
// keeps what it gave last time: a registry that is down removes nothing.
func (l *looper) reportRemoved(ctx context.Context, wl *wishlist.Wishlist, imgs []wishlist.Image, gaveNone []*wishlist.WildcardError) {
	now := map[string]loopImage{}
	for _, img := range imgs {
		now[img.Ref.String()] = loopImage{ref: img.Ref, input: wl.Input[img.Input]}
	}
	for _, e := range gaveNone {
		if e.Err == nil {
			continue
		}
		for name, was := range l.last {
			if was.input == e.Image {
				now[name] = was
			}
		}
	}
	var removed []string
	for name := range l.last {
		if _, ok := now[name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	for _, name := range removed {
		was := l.last[name]
		l.g.log.Info("removed from the wishlist: not converted again (its files stay in the store)", "image", name, "input", was.input)
		fmt.Printf("%-17s %s (input %s)\n", "removed", name, was.input)
		_ = l.lines.Write(ctx, notification.Line{notification.FieldAction: actionRemovedFromWishlist,
			notification.FieldImage: was.ref.Name(), notification.FieldImageRequest: was.input})
	}
	l.last = now
}
