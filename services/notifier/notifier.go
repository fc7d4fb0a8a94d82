package notifier

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	n "flatbed.dev/pkg/notification"
	"flatbed.dev/pkg/store"
)

// Name is the service's name: its durable consumer and its CloudEvents source.
const Name = "notifier"

const source = "flatbed/" + Name

// Lines receives DUCC notification lines (nil: no notification file).
type Lines interface {
	Write(ctx context.Context, fields map[string]string) error
}

// Service reports results.
type Service struct {
	StoreRoot string
	Bus       events.Publisher
	Log       *slog.Logger
	Lines     Lines
	// Endings joins the outputs of a wish that asked for several (required for those): a
	// wish ends when every output it asked for has.
	Endings events.Endings
	Metrics *Metrics
}

// Register adds the notifier's consumer to b.
func (s *Service) Register(ctx context.Context, b *bus.Bus) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(prometheus.DefaultRegisterer)
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: events.Consumers()[Name]}, s.Handle)
}

// Handle reports one stage's event.
func (s *Service) Handle(ctx context.Context, d *bus.Delivery) error {
	switch d.Type {
	case events.ImageResolvedType:
		var in events.ImageResolved
		if err := d.Decode(&in); err != nil {
			return err
		}
		if !in.AlreadyConverted {
			return nil
		}
		if in.Job.PushesThin() {
			// The thin pusher checks its thin image (output_format may have changed); its
			// thin.pushed ends the wish.
			s.Log.Info("already converted; waiting for its thin image", "wish", in.Job.WishID, "image", in.Job.Image, "thin", in.Job.ThinImage)
			return nil
		}
		s.Log.Info("already converted", "wish", in.Job.WishID, "image", in.Job.Image)
		return s.ended(ctx, in.Job, events.OutputUnpacked, events.ConversionCompleted{Image: in.Image, FlatPath: flatRel(in.Image.ConfigDigest),
			PublicPath: in.Image.Name, AlreadyConverted: true})
	case events.LayerIngestedType:
		var in events.LayerIngested
		if err := d.Decode(&in); err != nil {
			return err
		}
		if in.AlreadyPresent {
			return nil
		}
		hex := store.Hex(in.Layer.Digest)
		if err := s.pair(ctx, n.ActionStartLayerConversion, n.ActionEndLayerConversion, in.Seconds, in.Job, in.Image.Name, map[string]string{
			n.FieldLayer: hex, n.FieldSizeBytes: fmt.Sprint(in.Bytes), n.FieldStatus: n.StatusOK,
		}); err != nil {
			return err
		}
		return s.line(ctx, map[string]string{n.FieldAction: n.ActionPublishLayer, n.FieldLayerDigest: hex, n.FieldImage: in.Image.Name})
	case events.ImageFlattenedType:
		var in events.ImageFlattened
		if err := d.Decode(&in); err != nil {
			return err
		}
		if in.AlreadyPresent {
			return s.podmanLines(ctx, in)
		}
		if err := s.pair(ctx, n.ActionStartFlatConversion, n.ActionEndFlatConversion, in.Seconds, in.Job, in.Image.Name,
			map[string]string{n.FieldStatus: n.StatusOK}); err != nil {
			return err
		}
		if err := s.line(ctx, map[string]string{n.FieldAction: n.ActionPublishFlatImage, n.FieldImage: in.Image.Name,
			n.FieldPublicPath: in.PublicPath, n.FieldPrivatePath: in.FlatPath, n.FieldStatus: n.StatusOK}); err != nil {
			return err
		}
		return s.podmanLines(ctx, in)
	case events.ThinPushedType:
		var in events.ThinPushed
		if err := d.Decode(&in); err != nil {
			return err
		}
		return s.ended(ctx, in.Job, events.OutputUnpacked, events.ConversionCompleted{Image: in.Image, FlatPath: in.FlatPath, PublicPath: in.PublicPath,
			ThinImage: in.ThinImage, ThinDigest: in.ThinDigest, AlreadyConverted: in.AlreadyConverted})
	case events.ImageRelocatedType:
		var in events.ImageRelocated
		if err := d.Decode(&in); err != nil {
			return err
		}
		return s.ended(ctx, in.Job, events.OutputRelocated, events.ConversionCompleted{Image: in.Image, Relocated: in.Target})
	case events.ImageLazifiedType:
		var in events.ImageLazified
		if err := d.Decode(&in); err != nil {
			return err
		}
		return s.ended(ctx, in.Job, events.OutputLazy, events.ConversionCompleted{Image: in.Image, Lazy: in.Target})
	case events.ImageExportedType:
		var in events.ImageExported
		if err := d.Decode(&in); err != nil {
			return err
		}
		return s.ended(ctx, in.Job, events.OutputExported, events.ConversionCompleted{Image: in.Image, Exported: in.Reference})
	case events.ImageFailedType:
		var in events.ImageFailed
		if err := d.Decode(&in); err != nil {
			return err
		}
		return s.failed(ctx, in)
	}
	return nil
}

func (s *Service) completed(ctx context.Context, job events.Job, c events.ConversionCompleted) error {
	c.Job = job
	if job.Wants(events.OutputUnpacked) {
		c.Repository = filepath.Join(s.StoreRoot, filepath.Clean("/"+job.CvmfsRepo)) // validated; cleaned all the same
	}
	c.Seconds = since(job.SubmittedAt)
	env, err := events.New(events.ConversionCompletedType, source, events.ID(events.ConversionCompletedType, job.WishID), job, job.Image, c)
	if err != nil {
		return err
	}
	s.Log.Info("conversion completed", "wish", job.WishID, "image", job.Image, "public_path", c.PublicPath, "already_converted", c.AlreadyConverted,
		"relocated", c.Relocated, "lazy", c.Lazy, "exported", c.Exported)
	if err := s.Bus.Publish(ctx, env); err != nil {
		return err
	}
	s.Metrics.completed(c, !job.SubmittedAt.IsZero())
	return nil
}

func (s *Service) failed(ctx context.Context, in events.ImageFailed) error {
	job := in.Job
	in.Error = platformError(in) // platform.go
	f := events.ConversionFailed{Job: job, Stage: in.Stage, Layer: in.Layer, Error: in.Error, Seconds: since(job.SubmittedAt)}
	// DUCC's lines speak of the store's conversion: a wish that did not ask for it has none.
	if job.Wants(events.OutputUnpacked) {
		if err := s.failureLines(ctx, in, f.Seconds); err != nil {
			return err
		}
	}
	env, err := events.New(events.ConversionFailedType, source, events.ID(events.ConversionFailedType, job.WishID), job, job.Image, f)
	if err != nil {
		return err
	}
	s.Log.Error("conversion failed", "wish", job.WishID, "image", job.Image, "stage", in.Stage, "err", in.Error)
	if err := s.Bus.Publish(ctx, env); err != nil {
		return err
	}
	s.Metrics.failed(f, !job.SubmittedAt.IsZero())
	return nil
}

// failureLines reports a failure as DUCC does: on the end line of the step that failed,
// paired with its start line; a wish that failed before its image was resolved is named as
// it was wished.
func (s *Service) failureLines(ctx context.Context, in events.ImageFailed, seconds float64) error {
	start, end := n.ActionStartFlatConversion, n.ActionEndFlatConversion
	image := in.Job.Image
	if in.Image != nil {
		image = in.Image.Name
	}
	fields := map[string]string{n.FieldStatus: n.StatusError, n.FieldError: in.Error}
	if in.Layer != "" {
		start, end = n.ActionStartLayerConversion, n.ActionEndLayerConversion
		fields[n.FieldLayer] = store.Hex(in.Layer)
	}
	return s.pair(ctx, start, end, seconds, in.Job, image, fields)
}

// pair writes DUCC's start and end lines of one step, linked by an id. The step is reported
// when it has ended, so both lines are written then.
func (s *Service) pair(ctx context.Context, startAction, endAction string, seconds float64, job events.Job, image string, fields map[string]string) error {
	if s.Lines == nil {
		return nil
	}
	id := n.NewID()
	start := map[string]string{n.FieldAction: startAction, n.FieldID: id, n.FieldImage: image, n.FieldImageRequest: job.Image}
	if l := fields[n.FieldLayer]; l != "" {
		start[n.FieldLayer] = l
	}
	if err := s.line(ctx, start); err != nil {
		return err
	}
	fields[n.FieldAction] = endAction
	fields[n.FieldID] = id
	fields[n.FieldImage] = image
	fields[n.FieldImageRequest] = job.Image
	fields[n.FieldElapsed] = fmt.Sprintf("%f", seconds)
	return s.line(ctx, fields)
}

func (s *Service) line(ctx context.Context, fields map[string]string) error {
	if s.Lines == nil {
		return nil
	}
	if err := s.Lines.Write(ctx, fields); err != nil {
		return fmt.Errorf("writing the notification file: %w", err)
	}
	s.Metrics.line(fields[n.FieldAction])
	return nil
}

// flatRel is the flat directory relative to the repository root.
func flatRel(configDigest string) string {
	st := store.New("/")
	rel, _ := filepath.Rel(st.Root, st.FlatDir(configDigest))
	return filepath.ToSlash(rel)
}

func since(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return time.Since(t).Seconds()
}
