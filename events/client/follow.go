package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

// resultsSubject matches conversion.completed and conversion.failed, and nothing else.
const resultsSubject = events.Prefix + "conversion.>"

// Filter says which results Follow yields and from where it starts.
//
// Results stay in the stream until the pipeline's janitor sweeps processed events (every few
// minutes), so Since and FromSequence reach back only that far.
type Filter struct {
	WishID        string // only this wish's result ("" = every wish)
	CorrelationID string // only this run's results ("" = every run)

	// FromSequence starts at this stream sequence (a Result's Sequence+1 resumes after it).
	// When it is 0, Since starts at the first result stored at or after that time; when both
	// are zero, Follow yields the results stored from now on.
	FromSequence uint64
	Since        time.Time
}

func (f Filter) matches(job events.Job) bool {
	return (f.WishID == "" || f.WishID == job.WishID) && (f.CorrelationID == "" || f.CorrelationID == job.CorrelationID)
}

// Result is the end of one wish: exactly one of Completed and Failed is set.
type Result struct {
	Sequence  uint64    // the event's stream sequence
	Time      time.Time // when the stream stored it
	Completed *events.ConversionCompleted
	Failed    *events.ConversionFailed
}

// Job is the wish the result ends.
func (r Result) Job() events.Job {
	if r.Completed != nil {
		return r.Completed.Job
	}
	if r.Failed != nil {
		return r.Failed.Job
	}
	return events.Job{}
}

// Err is nil for a completed conversion and a *ConversionError for a failed one.
func (r Result) Err() error {
	if r.Failed == nil {
		return nil
	}
	return &ConversionError{Failed: r.Failed}
}

// ConversionError is a conversion that failed: the pipeline's conversion.failed event.
type ConversionError struct {
	Failed *events.ConversionFailed
}

func (e *ConversionError) Error() string {
	f := e.Failed
	if f.Layer != "" {
		return fmt.Sprintf("converting %s failed in the %s, layer %s: %s", f.Job.Image, f.Stage, f.Layer, f.Error)
	}
	return fmt.Sprintf("converting %s failed in the %s: %s", f.Job.Image, f.Stage, f.Error)
}

// Follow yields, in stream order, the results that f selects until ctx ends; then it closes
// the channel. It reads the stream message by message and creates no consumer, so it leaves
// the results for everyone else and a lost connection or server only delays it: a failed
// read is tried again. Results that are not valid events are skipped.
func (c *Client) Follow(ctx context.Context, f Filter) (<-chan Result, error) {
	stream, err := c.stream(ctx)
	if err != nil {
		return nil, err
	}
	next, err := start(ctx, stream, f)
	if err != nil {
		return nil, err
	}
	out := make(chan Result, 16)
	go func() {
		defer close(out)
		c.follow(ctx, stream, f, next, out)
	}()
	return out, nil
}

func (c *Client) follow(ctx context.Context, stream jetstream.Stream, f Filter, next uint64, out chan<- Result) {
	failing := false
	for ctx.Err() == nil {
		// Each read has its own short deadline: a request sent just as the server went away
		// is never answered, and must not hold the follower until ctx ends.
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := stream.GetMsg(rctx, next, jetstream.WithGetMsgSubject(resultsSubject))
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			sleep(ctx, c.poll)
			continue
		case err != nil:
			if !failing && ctx.Err() == nil {
				c.log.Warn("reading results, retrying", "err", err)
			}
			failing = true
			sleep(ctx, time.Second)
			continue
		}
		failing = false
		next = m.Sequence + 1
		r, err := readResult(m)
		if err != nil {
			c.log.Warn("skipping a result that is not a valid event", "sequence", m.Sequence, "subject", m.Subject, "err", err)
			continue
		}
		if !f.matches(r.Job()) {
			continue
		}
		select {
		case out <- r:
		case <-ctx.Done():
		}
	}
}

// readResult decodes and validates a conversion.completed or conversion.failed event.
func readResult(m *jetstream.RawStreamMsg) (Result, error) {
	ev, err := events.Parse(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	if err != nil {
		return Result{}, err
	}
	typ := events.ShortType(ev)
	if typ != events.ConversionCompletedType && typ != events.ConversionFailedType {
		return Result{}, fmt.Errorf("event type %q on %s is not a result", ev.Type(), m.Subject)
	}
	if events.Subject(typ) != m.Subject {
		return Result{}, fmt.Errorf("%s event on subject %s", typ, m.Subject)
	}
	v, err := events.Check(typ, ev.Data())
	if err != nil {
		return Result{}, err
	}
	r := Result{Sequence: m.Sequence, Time: m.Time}
	switch v := v.(type) {
	case *events.ConversionCompleted:
		r.Completed = v
	case *events.ConversionFailed:
		r.Failed = v
	}
	return r, nil
}

// start is the stream sequence Follow reads first.
func start(ctx context.Context, stream jetstream.Stream, f Filter) (uint64, error) {
	if f.FromSequence > 0 {
		return f.FromSequence, nil
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading the state of stream %s: %w", events.Stream, err)
	}
	if f.Since.IsZero() {
		return info.State.LastSeq + 1, nil
	}
	// The first result stored at or after Since, by bisection: the stream stores messages in
	// time order, so "the first result at or after sequence s is not older than Since" holds
	// from some s on. JetStream has no look-up by time but through a consumer.
	lo, hi := max(info.State.FirstSeq, 1), info.State.LastSeq+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := stream.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(resultsSubject))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			hi = mid
		case err != nil:
			return 0, fmt.Errorf("finding the first result since %s: %w", f.Since.Format(time.RFC3339), err)
		case m.Time.Before(f.Since):
			lo = m.Sequence + 1
		default:
			hi = mid
		}
	}
	return lo, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
