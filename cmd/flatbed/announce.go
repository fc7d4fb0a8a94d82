package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"flatbed.dev/events"
)

// announce publishes a lifecycle event (image.deleted, store.collected) so that downstream
// automation hears what a command removed. On p's bus when the command already holds one;
// else on --nats; else on the embedded server of --state-dir, started just for it (its
// stream keeps the event for a later `serve` or any durable consumer). When another process
// runs that embedded server, the event goes through the URL it listens on, or, when it
// listens on none, is not published: that is said on the log, not an error, since what was
// removed is gone either way. A bus that is there but refuses the event is an error.
func announce(ctx context.Context, g *globals, p *pipeline, typ, subject string, data interface{ Validate() error }) error {
	if err := data.Validate(); err != nil {
		return fmt.Errorf("%s event: %w", typ, err)
	}
	if p == nil {
		var err error
		if p, err = startPipeline(ctx, g, nil, ""); err != nil {
			var busy *exitError
			url := ""
			if g.natsURL == "" && errors.As(err, &busy) {
				url = stateDirURL(g.stateDir)
			}
			if g.natsURL != "" {
				return fmt.Errorf("the removal is done, but its %s event was not published: %w", typ, err)
			}
			if url == "" {
				g.log.Warn("event not published: no bus to publish it on", "type", typ, "subject", subject, "err", err)
				return nil
			}
			joined := *g
			joined.natsURL = url
			if p, err = startPipeline(ctx, &joined, nil, ""); err != nil {
				return fmt.Errorf("publishing %s on the NATS server of %s (%s): %w", typ, g.stateDir, url, err)
			}
		}
		defer p.close()
	}
	run := uuid.NewString()
	env, err := events.New(typ, "flatbed/cli", events.ID(typ, run), events.Job{CorrelationID: run}, subject, data)
	if err != nil {
		return err
	}
	if err := p.bus.Publish(ctx, env); err != nil {
		return fmt.Errorf("the removal is done, but its %s event was not published: %w", typ, err)
	}
	g.log.Info("published", "type", typ, "subject", subject, "id", env.ID)
	return nil
}

// stateDirURL is the NATS URL the process holding the state directory listens on, if any.
func stateDirURL(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, stateLockName))
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(b)); len(f) > 1 {
		return f[1]
	}
	return ""
}
