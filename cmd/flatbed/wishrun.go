package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// wishRun is one command's wishes for outputs that end without the store (relocate, lazy):
// published through the pipeline, each waited for until its conversion.completed or
// conversion.failed.
type wishRun struct {
	command       string   // the command's name, for the missing-stage message
	stages        []string // the stages its wishes pass
	waitForStages bool
	timeout       time.Duration
	// jobs are the wishes (WishID, CorrelationID and SubmittedAt are filled in), labels what
	// each is called in messages (the image as the user wrote it).
	jobs   []events.Job
	labels []string
}

// run publishes the wishes (over an embedded NATS server running the stages in this process
// without --nats; to the 'flatbed serve' processes with --nats) and calls done with each
// result, as it comes. It fails only when the run cannot go on: an interrupt, the timeout, a
// stage without a worker.
func (w *wishRun) run(ctx context.Context, g *globals, done func(label string, r result)) error {
	if g.natsURL != "" {
		if err := waitForNATS(ctx, g.log, g.natsURL, g.natsWait); err != nil {
			return err
		}
	}
	intr := notifyInterrupt()
	defer intr.stop()
	var services []string
	if g.natsURL == "" {
		services = w.stages
	}
	p, err := startPipeline(ctx, g, services, "")
	if err != nil {
		if ctx.Err() != nil {
			return intr.interrupted(len(w.jobs))
		}
		return err
	}
	defer p.close()
	js := p.bus.JetStream()
	if g.natsURL != "" {
		if err := checkStagesOf(ctx, g.log, js, g.natsURL, w.waitForStages, w.command, w.stages); err != nil {
			if ctx.Err() != nil {
				return intr.interrupted(len(w.jobs))
			}
			return err
		}
	}
	runCtx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	correlation := uuid.NewString()
	results, err := watchResults(runCtx, g.log, js, correlation)
	if err != nil {
		return err
	}
	if len(services) > 0 {
		go func() {
			if err := p.bus.Run(runCtx); err != nil {
				g.log.Error("pipeline stopped", "err", err)
			}
		}()
		<-p.bus.Running()
	}
	pending := map[string]string{} // wish id -> label
	for i, job := range w.jobs {
		job.WishID, job.CorrelationID, job.SubmittedAt = uuid.NewString(), correlation, time.Now().UTC()
		env, err := events.New(events.WishSubmittedType, "flatbed/cli", events.ID(events.WishSubmittedType, job.WishID), job, job.Image, events.WishSubmitted{Job: job})
		if err != nil {
			return err
		}
		if err := p.bus.Publish(runCtx, env); err != nil {
			if ctx.Err() != nil {
				return intr.interrupted(len(w.jobs))
			}
			return err
		}
		pending[job.WishID] = w.labels[i]
	}
	progress := time.NewTicker(progressInterval)
	defer progress.Stop()
	for len(pending) > 0 {
		select {
		case <-runCtx.Done():
			for _, l := range pending {
				fmt.Fprintf(os.Stderr, "unfinished: %s\n", l)
			}
			if ctx.Err() != nil {
				if len(services) > 0 {
					g.log.Info("interrupted; letting the steps in progress finish", "at_most", bus.DrainTimeout)
				}
				return intr.interrupted(len(pending))
			}
			return &exitError{exitSomeFailed, fmt.Errorf("gave up waiting after %s (--timeout) with %d image(s) unfinished", w.timeout, len(pending))}
		case <-progress.C:
			logProgressOf(runCtx, g.log, js, len(w.jobs)-len(pending), len(w.jobs), w.stages)
		case r := <-results:
			l, ok := pending[r.wishID]
			if !ok {
				continue
			}
			delete(pending, r.wishID)
			done(l, r)
		}
	}
	return nil
}
