package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/dumbremote"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
)

// Name is the service's name: its durable consumer and its CloudEvents source.
const Name = "exporter"

const source = "flatbed/" + Name

// Service exports the images of the wishes that ask for the exported output.
type Service struct {
	Bus      events.Publisher
	Log      *slog.Logger
	Registry []registry.Option
	// Remote are options for opening remotes (an S3 transport, where layers are recompressed).
	Remote []dumbremote.Option
	// MaxAttempts is how often an image is delivered before the wish is declared failed
	// (--max-attempts; 0 = the bus default).
	MaxAttempts int
	Metrics     *Metrics
}

// Register adds the exporter's consumer to b.
func (s *Service) Register(ctx context.Context, b *bus.Bus) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(prometheus.DefaultRegisterer)
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: events.Consumers()[Name], Concurrency: 2, MaxAttempts: s.MaxAttempts}, s.Handle)
}

// Handle exports one resolved image when its wish asks for it. A remote that is not one, one
// that refuses the credentials or has no bucket, an image the registry does not have and the
// registry's other last words fail the wish at once (events.Permanent); the rest (a remote or
// registry that did not answer) is tried again. A redelivery finds the blobs on the remote and
// writes only the reference again.
func (s *Service) Handle(ctx context.Context, d *bus.Delivery) error {
	var in events.ImageResolved
	if err := d.Decode(&in); err != nil {
		return err
	}
	job := in.Job
	if !job.Wants(events.OutputExported) {
		return nil
	}
	src, err := imageref.Parse(job.Image)
	if err != nil {
		s.count("failed")
		return events.Permanent(fmt.Errorf("exporting %s: %w", job.Image, err))
	}
	compress, err := dumbremote.ParseCompression(job.ExportCompress)
	if err != nil {
		s.count("failed")
		return events.Permanent(err)
	}
	start := time.Now()
	r, err := dumbremote.Open(ctx, job.ExportRemote, s.Remote...)
	if err != nil {
		return s.failure(job, err)
	}
	pinned := src
	if pinned.Digest == "" {
		// What the tag named when the resolver read it (an index whole), so that a tag moved
		// meanwhile cannot change what is exported.
		pinned.Digest = in.Image.Digest
		if in.Image.IndexDigest != "" {
			pinned.Digest = in.Image.IndexDigest
		}
	}
	ctx = registry.ContextWithScheme(ctx, src.Scheme, src.Registry)
	var st, last dumbremote.Stats
	var digest string
	err = registry.Do(ctx, s.Registry, func(ro []remote.Option) error {
		art, err := fetch(pinned, append(ro, remote.WithContext(ctx)))
		if err != nil {
			return err
		}
		desc, stats, err := r.Export(ctx, src, art, compress)
		st.Uploaded, st.Bytes, last = st.Uploaded+stats.Uploaded, st.Bytes+stats.Bytes, stats
		digest = desc.Digest.String()
		return err
	})
	// An attempt after a failed one finds what the failed one wrote: present now, but
	// transferred by this delivery all the same.
	st.Present = max(0, last.Uploaded+last.Present-st.Uploaded)
	s.countBlobs(st)
	if err != nil {
		return s.failure(job, err)
	}
	took := time.Since(start)
	name := src
	name.Digest = digest
	out := events.ImageExported{Job: job, Image: in.Image, Reference: name.Registry + "/" + name.Repository + name.Reference(),
		BlobsUploaded: st.Uploaded, BlobsPresent: st.Present, BytesUploaded: st.Bytes, Seconds: took.Seconds()}
	env, err := events.New(events.ImageExportedType, source, events.ID(events.ImageExportedType, job.WishID, in.Image.Digest), job, job.Image, out)
	if err != nil {
		return err
	}
	if err := s.Bus.Publish(ctx, env); err != nil {
		return err
	}
	s.count("exported")
	if s.Metrics != nil {
		s.Metrics.Seconds.Observe(took.Seconds())
	}
	s.Log.Info("exported", "wish", job.WishID, "image", job.Image, "remote", r.String(), "reference", out.Reference,
		"blobs_uploaded", st.Uploaded, "blobs_present", st.Present, "bytes", st.Bytes, "seconds", took.Seconds())
	return nil
}

// fetch reads what ref names from its registry: an index or an image.
func fetch(ref imageref.Ref, ro []remote.Option) (remote.Taggable, error) {
	r, err := ref.GGCR()
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(r, ro...)
	if err != nil {
		return nil, err
	}
	if desc.MediaType.IsIndex() {
		return desc.ImageIndex()
	}
	if desc.MediaType.IsSchema1() {
		return nil, events.Permanent(fmt.Errorf("it is a Docker schema 1 manifest (%s), which an OCI layout cannot hold", desc.MediaType))
	}
	return desc.Image()
}

// failure decides what a failed export means for the wish.
func (s *Service) failure(job events.Job, err error) error {
	var perm *dumbremote.PermanentError
	switch {
	case errors.Is(err, context.Canceled):
		return err // shutting down: handed back
	case errors.As(err, &perm), events.IsPermanent(err):
		s.count("failed")
		return events.Permanent(fmt.Errorf("exporting %s to %s: %w", job.Image, dumbremote.Redact(job.ExportRemote), err))
	case registry.Denied(err):
		s.count("failed")
		return events.Permanent(fmt.Errorf("exporting %s: the registry refused the credentials (DUCC_AUTH_REGISTRIES or docker login): %w", job.Image, registry.Explain(err)))
	case registry.Final(err):
		s.count("failed")
		return events.Permanent(fmt.Errorf("exporting %s: %w", job.Image, registry.Explain(err)))
	}
	return fmt.Errorf("exporting %s to %s: %w", job.Image, dumbremote.Redact(job.ExportRemote), registry.Explain(err))
}

func (s *Service) count(result string) {
	if s.Metrics != nil {
		s.Metrics.Images.WithLabelValues(result).Inc()
	}
}

func (s *Service) countBlobs(st dumbremote.Stats) {
	if s.Metrics == nil {
		return
	}
	s.Metrics.Blobs.WithLabelValues("uploaded").Add(float64(st.Uploaded))
	s.Metrics.Blobs.WithLabelValues("present").Add(float64(st.Present))
	s.Metrics.Bytes.Add(float64(st.Bytes))
}
