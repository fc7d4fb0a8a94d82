package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/wishlist"
)

// submission publishes the wishes of one run (a convert, or a pass of loop) on a started
// pipeline and waits for their results.
type submission struct {
	g         *globals
	o         *convertOpts
	bus       *bus.Bus
	intr      *interrupt
	inProcess bool // the services run in this process, and stop with it
}

// tally counts how the images of one submission ended.
type tally struct {
	converted, already, failed, ignored int
}

// run publishes one wish per image of imgs, thin being their thin-image names (nil with
// -i), and prints a line per image as its result comes, after a line per wildcard input
// that gave no image (gaveNone). ctx is the process's: when it ends first the run was
// interrupted; runCtx is ctx bounded by --timeout.
func (s *submission) run(ctx, runCtx context.Context, wl *wishlist.Wishlist, imgs []wishlist.Image, thin []string, gaveNone []*wishlist.WildcardError) (t tally, err error) {
	g, o := s.g, s.o
	js := s.bus.JetStream()
	correlation := uuid.NewString()
	results, err := watchResults(runCtx, g.log, js, correlation)
	if err != nil {
		return t, err
	}
	t.failed = reportGaveNone(wl, gaveNone, func(format string, args ...any) { fmt.Printf(format, args...) })
	t.ignored = len(gaveNone) - t.failed

	pending := map[string]string{} // wish id -> image
	for i, img := range imgs {
		job := events.Job{WishID: uuid.NewString(), CorrelationID: correlation, Image: img.Ref.String(), CvmfsRepo: wl.CvmfsRepo,
			SkipThin: o.skipThin, ConvertAgain: o.convertAgain, SkipPodman: o.skipPodman, MultiArch: o.multiArch, User: wl.User, SubmittedAt: time.Now().UTC()}
		if !o.skipThin {
			job.ThinImage = thin[i]
		}
		env, err := events.New(events.WishSubmittedType, "flatbed/cli", events.ID(events.WishSubmittedType, job.WishID), job, job.Image, events.WishSubmitted{Job: job})
		if err != nil {
			return t, err
		}
		if err := s.bus.Publish(runCtx, env); err != nil {
			if ctx.Err() != nil {
				return t, s.intr.interrupted(len(imgs))
			}
			return t, err
		}
		pending[job.WishID] = job.Image
		if g.progress != nil {
			g.progress.wished(job.WishID, job.Image)
		}
	}

	progress := time.NewTicker(progressInterval)
	defer progress.Stop()
	for len(pending) > 0 {
		select {
		case <-runCtx.Done():
			if ctx.Err() != nil {
				for _, img := range pending {
					fmt.Fprintf(os.Stderr, "unfinished: %s\n", img)
				}
				if s.inProcess {
					g.log.Info("interrupted; letting the steps in progress finish", "at_most", bus.DrainTimeout)
				}
				return t, s.intr.interrupted(len(pending))
			}
			for _, img := range pending {
				fmt.Fprintf(os.Stderr, "no result for %s\n", img)
			}
			return t, &exitError{exitSomeFailed, fmt.Errorf("gave up waiting after %s (--timeout) with %d image(s) unfinished", o.timeout, len(pending))}
		case <-progress.C:
			logProgress(runCtx, g.log, js, len(imgs)-len(pending), len(imgs))
		case r := <-results:
			img, ok := pending[r.wishID]
			if !ok {
				continue
			}
			delete(pending, r.wishID)
			if g.progress != nil {
				g.progress.ended(r.wishID, r.completed != nil)
			}
			if r.completed != nil {
				c := r.completed
				how := "converted"
				if c.AlreadyConverted {
					how = "already converted"
					t.already++
				} else {
					t.converted++
				}
				fmt.Fprintf(g.stdout(), "%-17s %s -> %s\n", how, img, filepath.Join(c.Repository, c.PublicPath))
				continue
			}
			if wl.Ignored(img) {
				t.ignored++
				fmt.Fprintf(g.stdout(), "%-17s %s: %s (ignored: matches ignoreErrors)\n", "failed", img, r.failed.Error)
				continue
			}
			t.failed++
			fmt.Fprintf(g.stdout(), "%-17s %s: %s\n", "FAILED", img, r.failed.Error)
		}
	}
	return t, nil
}
