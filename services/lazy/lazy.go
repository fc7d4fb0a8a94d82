package lazy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/lazy"
	"flatbed.dev/pkg/registry"
)

// Name is the service's name: its durable consumer and its CloudEvents source.
const Name = "lazy"

const source = "flatbed/" + Name

// Service converts the images of the wishes that ask for the lazy output.
type Service struct {
	Bus      events.Publisher
	Log      *slog.Logger
	Registry []registry.Option
	// MaxAttempts is how often an image is delivered before the wish is declared failed
	// (--max-attempts; 0 = the bus default). Registry faults are retried within a delivery.
	MaxAttempts int
	Metrics     *Metrics
	// Dedup remembers converted layers and images; nil opens the JetStream KV bucket
	// DedupBucket in Register.
	Dedup lazy.Dedup
	// Concurrency bounds the platforms of an index converted at once (--concurrency-limit;
	// 0 = lazy.DefaultConcurrency).
	Concurrency int
	// TempDir holds the spooled and converted blobs ("" = the system's temporary directory).
	TempDir string
}

// Register adds the lazy stage's consumer to b, opening the dedup bucket unless Dedup is set.
func (s *Service) Register(ctx context.Context, b *bus.Bus) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(prometheus.DefaultRegisterer)
	}
	if s.Dedup == nil {
		kv, err := b.Bucket(ctx, DedupBucket, "flatbed lazy-pull conversions: converted layers by chain ID and format, converted images by source digest")
		if err != nil {
			return err
		}
		s.Dedup = NewKV(kv)
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: events.Consumers()[Name], Concurrency: 2, MaxAttempts: s.MaxAttempts}, s.Handle)
}

// Handle converts one resolved image when its wish asks for the lazy output. Registry faults
// are retried within the call; a format flatbed does not make, a name that cannot be a
// target, an inconsistent image and the registry's last word fail the wish at once.
func (s *Service) Handle(ctx context.Context, d *bus.Delivery) error {
	var in events.ImageResolved
	if err := d.Decode(&in); err != nil {
		return err
	}
	job := in.Job
	if !job.Wants(events.OutputLazy) {
		return nil
	}
	req, src, dst, err := s.plan(job, in.Image)
	if err != nil {
		s.count("failed")
		return events.Permanent(err)
	}
	start := time.Now()
	ctx = registry.ContextWithScheme(registry.ContextWithScheme(ctx, src.Scheme, src.Registry), dst.Scheme, dst.Registry)
	var res *lazy.Result
	err = registry.Do(ctx, s.Registry, func(ro []remote.Option) error {
		req.Remote = ro
		r, err := lazy.Convert(ctx, req)
		res = r
		return err
	})
	if err != nil {
		return s.failure(job, dst, err)
	}
	took := time.Since(start)
	target := dst.Registry + "/" + dst.Repository
	if dst.Tag != "" {
		target += ":" + dst.Tag
	}
	target += "@" + res.Digest.String()
	out := events.ImageLazified{Job: job, Image: in.Image, Target: target, Format: job.LazyFormat, Cached: res.Cached,
		Layers: res.Layers, Converted: res.Converted, Reused: res.Reused, Bytes: res.Bytes, Seconds: took.Seconds()}
	env, err := events.New(events.ImageLazifiedType, source, events.ID(events.ImageLazifiedType, job.WishID, in.Image.Digest), job, job.Image, out)
	if err != nil {
		return err
	}
	if err := s.Bus.Publish(ctx, env); err != nil {
		return err
	}
	if res.Cached {
		s.count("cached")
	} else {
		s.count("converted")
	}
	if m := s.Metrics; m != nil {
		m.Layers.WithLabelValues("converted").Add(float64(res.Converted))
		m.Layers.WithLabelValues("reused").Add(float64(res.Reused))
		m.Bytes.WithLabelValues("source").Add(float64(res.SourceBytes))
		m.Bytes.WithLabelValues("converted").Add(float64(res.Bytes))
		m.Seconds.Observe(took.Seconds())
	}
	s.Log.Info("lazified", "wish", job.WishID, "image", job.Image, "target", target, "format", job.LazyFormat,
		"layers", res.Layers, "converted", res.Converted, "reused", res.Reused, "cached", res.Cached, "seconds", took.Seconds())
	return nil
}

// plan names what to convert and where: the image as wished, pinned to what the resolver read
// (the index a tag named, every platform, as overlaybd's convertor converts it), and the
// wish's lazy target.
func (s *Service) plan(job events.Job, img events.Image) (lazy.Request, imageref.Ref, imageref.Ref, error) {
	src, err := imageref.Parse(job.Image)
	if err != nil {
		return lazy.Request{}, src, imageref.Ref{}, fmt.Errorf("converting %s: %w", job.Image, err)
	}
	if src.Digest == "" {
		src.Digest = img.Digest
		if img.IndexDigest != "" {
			src.Digest = img.IndexDigest
		}
	}
	dst, err := imageref.Parse(job.LazyImage)
	if err != nil {
		return lazy.Request{}, src, dst, fmt.Errorf("the lazy target of %s: %w", job.Image, err)
	}
	if dst.Wildcard() {
		return lazy.Request{}, src, dst, fmt.Errorf("the lazy target %s has a wildcard tag: name one tag", job.LazyImage)
	}
	srcRef, err := src.GGCR()
	if err != nil {
		return lazy.Request{}, src, dst, err
	}
	dstRef, err := dst.GGCR()
	if err != nil {
		return lazy.Request{}, src, dst, err
	}
	conv, err := lazy.New(job.LazyFormat, lazy.Options{PrioritizedFiles: job.LazyPrioritized})
	if err != nil {
		return lazy.Request{}, src, dst, err
	}
	req := lazy.Request{Source: srcRef, Target: dstRef, Format: job.LazyFormat, Converter: conv, OCI: job.LazyOCI, Referrer: job.LazyReferrer,
		Concurrency: s.Concurrency, TempDir: s.TempDir, Dedup: s.Dedup, Log: s.Log}
	if len(job.LazyPrioritized) > 0 {
		// Prioritised files change the blob: such conversions have dedup keys of their own.
		h := sha256.Sum256([]byte(strings.Join(job.LazyPrioritized, "\n")))
		req.Variant = hex.EncodeToString(h[:6])
	}
	return req, src, dst, nil
}

// failure decides what a failed conversion means for the wish: credentials or a name the
// registry refuses, its other last words and an inconsistent image fail it at once; what may
// still mend is tried again.
func (s *Service) failure(job events.Job, dst imageref.Ref, err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return err // shutting down: handed back
	case registry.Denied(err):
		s.count("failed")
		return events.Permanent(fmt.Errorf("converting %s to %s: the registry refused the credentials; check them (DUCC_AUTH_REGISTRIES, -u or docker login): %w",
			job.Image, dst.Registry+"/"+dst.Repository, registry.Explain(err)))
	case registry.Final(err):
		s.count("failed")
		return events.Permanent(fmt.Errorf("converting %s: %w", job.Image, registry.Explain(err)))
	case errors.Is(err, lazy.ErrNotLazy):
		s.count("failed")
		return events.Permanent(fmt.Errorf("converting %s to %s: %w", job.Image, job.LazyFormat, err))
	case errors.Is(err, lazy.ErrDigestMismatch) && strings.Contains(err.Error(), "inconsistent"):
		s.count("failed")
		return events.Permanent(err)
	}
	return fmt.Errorf("converting %s: %w", job.Image, registry.Explain(err))
}

func (s *Service) count(result string) {
	if s.Metrics != nil {
		s.Metrics.Images.WithLabelValues(result).Inc()
	}
}
