package bus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

// JanitorInterval is how often a running bus removes fully processed events.
var JanitorInterval = 5 * time.Minute

// Sweep removes from the pipeline stream every message that no consumer still needs: those
// below the lowest first-unacknowledged sequence of the consumers that have work
// outstanding. This, not an age limit, keeps the stream small, so work waiting for a stopped
// service is never dropped however long it waits. Downstream readers that want to keep
// events should have their own durable consumer: it holds them back like ours do.
func Sweep(ctx context.Context, js jetstream.JetStream) (purgedBelow uint64, err error) {
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return 0, fmt.Errorf("opening stream %s: %w", events.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	floor := uint64(math.MaxUint64)
	names := stream.ConsumerNames(ctx)
	for name := range names.Name() {
		c, err := stream.Consumer(ctx, name)
		if err != nil {
			return 0, err // unsure what a consumer needs: purge nothing
		}
		ci, err := c.Info(ctx)
		if err != nil {
			return 0, err
		}
		// Not NumPending: the server counts a message just published into a consumer's
		// pending a moment later, and a sweep in that moment purged unprocessed work. The
		// acknowledgement floor and the stream's own messages are what is certain.
		f, err := firstNeeded(ctx, stream, ci)
		if err != nil {
			return 0, err
		}
		floor = min(floor, f)
	}
	if err := names.Err(); err != nil {
		return 0, err
	}
	if floor == math.MaxUint64 {
		floor = info.State.LastSeq + 1
	}
	if floor <= info.State.FirstSeq {
		return 0, nil
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSequence(floor)); err != nil {
		return 0, fmt.Errorf("purging %s below %d: %w", events.Stream, floor, err)
	}
	return floor, nil
}

// firstNeeded is the lowest sequence the consumer may still need: the first message of its
// subjects after its acknowledgement floor (the floor of a filtered consumer says nothing of
// the other subjects' messages below the ones it reads).
func firstNeeded(ctx context.Context, stream jetstream.Stream, ci *jetstream.ConsumerInfo) (uint64, error) {
	from := ci.AckFloor.Stream + 1
	filters := ci.Config.FilterSubjects
	if ci.Config.FilterSubject != "" {
		filters = append(filters, ci.Config.FilterSubject)
	}
	if len(filters) == 0 {
		return from, nil
	}
	first := uint64(math.MaxUint64)
	for _, f := range filters {
		m, err := stream.GetMsg(ctx, from, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("finding what consumer %s needs: %w", ci.Name, err)
		}
		first = min(first, m.Sequence)
	}
	return first, nil
}

func (b *Bus) janitor(ctx context.Context) {
	t := time.NewTicker(JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			below, err := Sweep(sctx, b.js)
			cancel()
			if err != nil {
				b.log.Warn("sweeping processed events", "err", err)
			} else if below > 0 {
				b.log.Debug("swept processed events", "below", below)
			}
		}
	}
}
