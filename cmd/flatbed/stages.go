package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events/bus"
)

// stageCheckWindow is how long `convert --nats` looks for a worker of every stage before it
// names the ones missing: a worker between two pulls shows none for a moment.
var stageCheckWindow = 5 * time.Second

// checkStages is checkStagesOf for convert: the stages a conversion passes.
func checkStages(ctx context.Context, log *slog.Logger, js jetstream.JetStream, natsURL string, wait bool) error {
	return checkStagesOf(ctx, log, js, natsURL, wait, "convert", convertStages)
}

// checkStagesOf fails, naming each stage and how to start it, when one of the stages the
// wishes of command pass has no worker on the NATS server, since its wishes would wait for
// ever; with wait it only warns, and the progress lines keep naming the stages still missing.
func checkStagesOf(ctx context.Context, log *slog.Logger, js jetstream.JetStream, natsURL string, wait bool, command string, stages []string) error {
	missing, err := missingStages(ctx, js, stageCheckWindow, stages)
	if err != nil {
		return fmt.Errorf("asking NATS which stages have a worker: %w", err)
	}
	if len(missing) == 0 {
		return nil
	}
	if wait {
		log.Warn("no worker yet for some stages; the wishes wait for them (--wait-for-stages)", "stages", strings.Join(missing, ", "))
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "no worker runs stage %s on %s, so no wish would finish; nothing was submitted. Start the missing stage(s):",
		strings.Join(missing, ", "), natsURL)
	for _, s := range missing {
		fmt.Fprintf(&b, "\n  flatbed serve %s --nats %s", s, natsURL)
	}
	fmt.Fprintf(&b, "\nor run %s with --wait-for-stages to submit the wishes and wait for the stages to start", command)
	return &exitError{exitSomeFailed, fmt.Errorf("%s", b.String())}
}

// missingStages samples the consumers of names (in pipeline order) for up to window and
// returns those that showed no worker in any sample.
func missingStages(ctx context.Context, js jetstream.JetStream, window time.Duration, names []string) ([]string, error) {
	seen := map[string]bool{}
	deadline := time.Now().Add(window)
	var lastErr error
	read := false
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		stages, err := bus.Stages(rctx, js, names)
		cancel()
		if err != nil {
			lastErr = err
		} else {
			read = true
			for _, s := range stages {
				if s.Worked() {
					seen[s.Name] = true
				}
			}
		}
		if len(seen) == len(names) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleep(ctx, 200*time.Millisecond)
	}
	if !read {
		if lastErr == nil {
			lastErr = ctx.Err()
		}
		return nil, lastErr
	}
	var missing []string
	for _, s := range names {
		if !seen[s] {
			missing = append(missing, s)
		}
	}
	return missing, nil
}

// progressInterval is how often convert says how far the run is while it waits.
var progressInterval = 10 * time.Second

// logProgress is logProgressOf the stages a conversion passes.
func logProgress(ctx context.Context, log *slog.Logger, js jetstream.JetStream, done, total int) {
	logProgressOf(ctx, log, js, done, total, convertStages)
}

// logProgressOf says how many images are done and where the work waits: the queue of each
// of names (what its consumer has not been delivered yet, and what its workers hold), and
// those without a worker. The stage counts are the server's, for every run on it.
func logProgressOf(ctx context.Context, log *slog.Logger, js jetstream.JetStream, done, total int, names []string) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	stages, err := bus.Stages(rctx, js, names)
	cancel()
	attrs := []any{"done", fmt.Sprintf("%d of %d", done, total)}
	if err != nil {
		log.Info("waiting for results", append(attrs, "stages", "unknown: "+err.Error())...)
		return
	}
	var at, stalled []string
	for _, s := range stages {
		if s.Pending > 0 || s.InProgress > 0 {
			at = append(at, fmt.Sprintf("%s %d queued/%d in progress", s.Name, s.Pending, s.InProgress))
		}
		if s.Pending > 0 && !s.Worked() {
			stalled = append(stalled, s.Name)
		}
	}
	if len(at) > 0 {
		attrs = append(attrs, "at", strings.Join(at, ", "))
	}
	if len(stalled) > 0 {
		// Work waits for these and nobody pulls it.
		attrs = append(attrs, "no_worker", strings.Join(stalled, ", "))
	}
	log.Info("waiting for results", attrs...)
}
