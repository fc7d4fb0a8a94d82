package frontdoor

import (
	"context"
	"errors"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/imageref"
)

// StateTypes are the events that move an image's state, whoever wished it (the front door,
// flatbed convert, anyone on the bus).
var StateTypes = []string{
	events.WishSubmittedType, events.ImageResolvedType, events.ImageFlattenedType, events.ThinPushedType,
	events.ImageRelocatedType, events.ConversionCompletedType, events.ConversionFailedType,
}

// stateMaxAttempts is how often a state update is tried (with the bus's back-off, up to 30s
// apart) before it is dropped: the front door must never report a wish failed because it
// could not record a state, so it gives up silently rather than through the bus.
const stateMaxAttempts = 200

// HandleState records the state the delivered event gives its image. The bus has validated
// the event; events that name no image the front door can key are skipped.
func (s *Service) HandleState(ctx context.Context, d *bus.Delivery) error {
	job, next, ok, err := transition(d)
	if err != nil || !ok {
		if err != nil {
			s.Log.Warn("skipping an event the front door cannot read", "type", d.Type, "id", d.Event.ID(), "err", err)
		}
		return nil
	}
	ref, err := imageref.Parse(job.Image)
	if err != nil {
		s.Log.Warn("skipping an event whose image does not parse", "type", d.Type, "id", d.Event.ID(), "err", err)
		return nil
	}
	name := stateName(ref)
	key := Key(job.CvmfsRepo, name)
	next.ID, next.Image, next.CvmfsRepo, next.WishID, next.SubmittedAt = key, name, job.CvmfsRepo, job.WishID, job.SubmittedAt
	next.Event = Event{ID: d.Event.ID(), Type: d.Type, Time: d.Event.Time().UTC()}
	next.UpdatedAt = time.Now().UTC()
	err = s.updateImage(ctx, key, next)
	if err != nil && d.LastAttempt() {
		s.Log.Error("giving up recording an image state", "image", next.Image, "event", d.Event.ID(), "err", err)
		return nil
	}
	return err
}

func (s *Service) updateImage(ctx context.Context, key string, next Image) error {
	for {
		var cur Image
		rev, err := get(ctx, s.rec.images, key, &cur)
		if err != nil {
			return err
		}
		if rev != 0 && !moves(cur, next) {
			return nil
		}
		if next.PublicPath == "" && cur.WishID == next.WishID {
			next.PublicPath = cur.PublicPath
		}
		err = put(ctx, s.rec.images, key, next, rev)
		if errors.Is(err, errConflict) {
			continue
		}
		if err == nil {
			s.changed()
		}
		return err
	}
}

// moves says whether next replaces cur: not a redelivery of the event that set cur, not an
// event of an earlier submission, and not a step of a submission that has already ended.
func moves(cur, next Image) bool {
	switch {
	case cur.Event.ID == next.Event.ID:
		return false
	case next.SubmittedAt.Before(cur.SubmittedAt):
		return false
	case cur.WishID == next.WishID && ended(cur.State) && !ended(next.State):
		return false
	}
	return true
}

func ended(state string) bool { return state == StateDone || state == StateFailed }

// transition reads the delivered event: its job and the state it sets (ok false for events
// that set none).
func transition(d *bus.Delivery) (events.Job, Image, bool, error) {
	switch d.Type {
	case events.WishSubmittedType:
		var in events.WishSubmitted
		err := d.Decode(&in)
		return in.Job, Image{State: StatePending}, err == nil, err
	case events.ImageResolvedType:
		var in events.ImageResolved
		err := d.Decode(&in)
		return in.Job, Image{State: StateRunning}, err == nil, err
	case events.ImageFlattenedType:
		var in events.ImageFlattened
		err := d.Decode(&in)
		return in.Job, Image{State: StateRunning, PublicPath: in.PublicPath}, err == nil, err
	case events.ThinPushedType:
		var in events.ThinPushed
		err := d.Decode(&in)
		return in.Job, Image{State: StateRunning, PublicPath: in.PublicPath}, err == nil, err
	case events.ImageRelocatedType:
		var in events.ImageRelocated
		err := d.Decode(&in)
		return in.Job, Image{State: StateRunning}, err == nil, err
	case events.ConversionCompletedType:
		var in events.ConversionCompleted
		err := d.Decode(&in)
		return in.Job, Image{State: StateDone, PublicPath: in.PublicPath}, err == nil, err
	case events.ConversionFailedType:
		var in events.ConversionFailed
		err := d.Decode(&in)
		return in.Job, Image{State: StateFailed, Error: in.Error, Stage: in.Stage}, err == nil, err
	}
	return events.Job{}, Image{}, false, nil
}
