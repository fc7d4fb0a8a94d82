package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"flatbed.dev/events"
)

// ended records that one output of the wish ended, with what it adds to the wish's
// conversion.completed, and publishes that once every output the wish asked for has ended.
// A wish with one output needs no record; the others are joined in Endings, so a restart
// or a redelivery loses or doubles nothing (the completion's id is the wish's).
func (s *Service) ended(ctx context.Context, job events.Job, output string, c events.ConversionCompleted) error {
	awaited := awaitedOutputs(job)
	if len(awaited) == 1 {
		return s.completed(ctx, job, c)
	}
	if s.Endings == nil {
		return events.Permanent(errors.New("the notifier has no record of outputs (Endings) to join the wish's several outputs"))
	}
	c.Job = events.Job{} // every event carries the job: the record needs only the results
	result, err := json.Marshal(c)
	if err != nil {
		return err
	}
	recorded, err := s.Endings.End(ctx, job.WishID, output, result)
	if err != nil {
		return err
	}
	var all events.ConversionCompleted
	for _, o := range awaited {
		r, ok := recorded[o]
		if !ok {
			s.Log.Info("output ended; waiting for the others", "wish", job.WishID, "image", job.Image, "output", output, "waiting_for", o)
			return nil
		}
		var part events.ConversionCompleted
		if err := json.Unmarshal(r, &part); err != nil {
			return events.Permanent(fmt.Errorf("the record of output %s of wish %s: %w", o, job.WishID, err))
		}
		merge(&all, part)
	}
	if err := s.completed(ctx, job, all); err != nil {
		return err
	}
	return s.Endings.Forget(ctx, job.WishID)
}

// awaitedOutputs are the outputs whose end the notifier waits for: the thin image ends with
// the unpacked output (thin.pushed), so it is not awaited on its own.
func awaitedOutputs(job events.Job) []string {
	var out []string
	for _, o := range []string{events.OutputUnpacked, events.OutputRelocated, events.OutputLazy, events.OutputExported} {
		if job.Wants(o) {
			out = append(out, o)
		}
	}
	return out
}

// merge adds what one output produced to the wish's completion.
func merge(all *events.ConversionCompleted, part events.ConversionCompleted) {
	if all.Image.Digest == "" {
		all.Image = part.Image
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&all.FlatPath, part.FlatPath}, {&all.PublicPath, part.PublicPath}, {&all.ThinImage, part.ThinImage},
		{&all.ThinDigest, part.ThinDigest}, {&all.Relocated, part.Relocated}, {&all.Lazy, part.Lazy}, {&all.Exported, part.Exported},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	all.AlreadyConverted = all.AlreadyConverted || part.AlreadyConverted
}
