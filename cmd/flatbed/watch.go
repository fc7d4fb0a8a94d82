package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

type result struct {
	wishID    string
	completed *events.ConversionCompleted
	failed    *events.ConversionFailed
}

// watchResults follows conversion.completed / conversion.failed of one run (correlation id)
// from now on. It reads the stream message by message (no consumer to lose when a NATS
// node goes away: a failed read is simply tried again) and leaves the events for everyone else.
func watchResults(ctx context.Context, log *slog.Logger, js jetstream.JetStream, correlation string) (<-chan result, error) {
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return nil, fmt.Errorf("watching results: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("watching results: %w", err)
	}
	out := make(chan result, 64)
	go func() {
		next := info.State.LastSeq + 1
		failing := false
		for ctx.Err() == nil {
			// Each read has its own short deadline: a request sent just as the server went
			// away is never answered, and must not hold the watch until the run's timeout.
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			m, err := stream.GetMsg(rctx, next, jetstream.WithGetMsgSubject(events.Prefix+"conversion.>"))
			cancel()
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
				sleep(ctx, 200*time.Millisecond)
				continue
			case err != nil:
				if !failing && ctx.Err() == nil {
					log.Warn("reading results, retrying", "err", err)
				}
				failing = true
				sleep(ctx, time.Second)
				continue
			}
			failing = false
			next = m.Sequence + 1
			if r, ok := readResult(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}, correlation); ok {
				select {
				case out <- r:
				case <-ctx.Done():
				}
			}
		}
	}()
	return out, nil
}

// readResult decodes a conversion result of the run correlation.
func readResult(m *nats.Msg, correlation string) (result, bool) {
	ev, err := events.Parse(m)
	if err != nil || ev.Extensions()[events.ExtCorrelationID] != correlation {
		return result{}, false
	}
	var r result
	switch events.ShortType(ev) {
	case events.ConversionCompletedType:
		r.completed = &events.ConversionCompleted{}
		err = events.Decode(ev, r.completed)
		r.wishID = r.completed.Job.WishID
	case events.ConversionFailedType:
		r.failed = &events.ConversionFailed{}
		err = events.Decode(ev, r.failed)
		r.wishID = r.failed.Job.WishID
	default:
		return result{}, false
	}
	return r, err == nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
