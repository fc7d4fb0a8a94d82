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
	events.ImageRelocatedType, events.ImageLazifiedType, events.ImageExportedType, events.ConversionCompletedType, events.ConversionFailedType,
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
		carryOutputs(&cur, &next)
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
// that set none), with the wish's outputs and which of them the event ended.
func transition(d *bus.Delivery) (events.Job, Image, bool, error) {
	job, next, ok, err := step(d)
	if !ok || err != nil {
		return job, next, ok, err
	}
	outs := outputsOf(job)
	for _, o := range next.Outputs { // what the event ended
		set(outs, o.Name, o.State, o.Result)
	}
	if next.State == StateFailed {
		failOutputs(outs, next.Stage)
	}
	next.Outputs = outs
	return job, next, true, nil
}

// endedOutputs lists the outputs an event ended: pairs of output name and result.
func endedOutputs(pairs ...string) []Output {
	var out []Output
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, Output{Name: pairs[i], State: OutputDone, Result: pairs[i+1]})
	}
	return out
}

// step reads the delivered event: its job, the state it sets and the outputs it ended.
func step(d *bus.Delivery) (events.Job, Image, bool, error) {
	switch d.Type {
	case events.WishSubmittedType:
		var in events.WishSubmitted
		err := d.Decode(&in)
		return in.Job, Image{State: StatePending}, err == nil, err
	case events.ImageResolvedType:
		var in events.ImageResolved
		err := d.Decode(&in)
		next := Image{State: StateRunning}
		if in.AlreadyConverted {
			next.Outputs = endedOutputs(events.OutputUnpacked, in.Image.Name) // the store holds it: only the thin image may follow
		}
		return in.Job, next, err == nil, err
	case events.ImageFlattenedType:
		var in events.ImageFlattened
		err := d.Decode(&in)
		return in.Job, Image{State: StateRunning, PublicPath: in.PublicPath, Outputs: endedOutputs(events.OutputUnpacked, in.PublicPath)}, err == nil, err
	case events.ThinPushedType:
		var in events.ThinPushed
		err := d.Decode(&in)
		next := Image{State: StateRunning, PublicPath: in.PublicPath, Outputs: endedOutputs(events.OutputUnpacked, in.PublicPath)}
		if !in.Skipped {
			next.Outputs = append(next.Outputs, endedOutputs(events.OutputThin, thinResult(in.ThinImage, in.ThinDigest))...)
		}
		return in.Job, next, err == nil, err
	case events.ImageRelocatedType:
		var in events.ImageRelocated
		err := d.Decode(&in)
		return in.Job, Image{State: StateRunning, Outputs: endedOutputs(events.OutputRelocated, in.Target)}, err == nil, err
	case events.ImageLazifiedType:
		var in events.ImageLazified
		err := d.Decode(&in)
		return in.Job, Image{State: StateRunning, Outputs: endedOutputs(events.OutputLazy, in.Target)}, err == nil, err
	case events.ImageExportedType:
		var in events.ImageExported
		err := d.Decode(&in)
		return in.Job, Image{State: StateRunning, Outputs: endedOutputs(events.OutputExported, in.Reference)}, err == nil, err
	case events.ConversionCompletedType:
		var in events.ConversionCompleted
		err := d.Decode(&in)
		return in.Job, Image{State: StateDone, PublicPath: in.PublicPath, Outputs: endedOutputs(
			events.OutputUnpacked, in.PublicPath, events.OutputThin, thinResult(in.ThinImage, in.ThinDigest),
			events.OutputRelocated, in.Relocated, events.OutputLazy, in.Lazy, events.OutputExported, in.Exported)}, err == nil, err
	case events.ConversionFailedType:
		var in events.ConversionFailed
		err := d.Decode(&in)
		return in.Job, Image{State: StateFailed, Error: in.Error, Stage: in.Stage}, err == nil, err
	}
	return events.Job{}, Image{}, false, nil
}
