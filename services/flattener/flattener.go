package flattener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/flatten"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/singularity"
	"flatbed.dev/pkg/store"
)

// Name is the service's name: its durable consumer and its CloudEvents source.
const Name = "flattener"

const source = "flatbed/" + Name

// Service builds flat root file systems.
type Service struct {
	StoreRoot   string
	Bus         events.Publisher
	Log         *slog.Logger
	Concurrency int
	MaxAttempts int
	Metrics     *Metrics

	// Locks, when set, gives one build per image across every flattener process sharing the
	// bus; without it concurrent builds in different processes are still safe (the first
	// rename wins) but wasted.
	Locks events.Locker

	building sync.Map // flat directory -> *sync.Mutex: one build per image in this process
}

// Register adds the flattener's consumer to b.
func (s *Service) Register(ctx context.Context, b *bus.Bus) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 2
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(prometheus.DefaultRegisterer)
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: []string{events.LayerIngestedType}, Concurrency: s.Concurrency, MaxAttempts: s.MaxAttempts}, s.Handle)
}

// Handle is called once per ingested layer. Only when every layer of the image is in the
// store does it do anything: the store is the join's state, so it survives restarts and
// redeliveries, and the last layer to arrive (whichever ingester brought it) triggers the flat.
func (s *Service) Handle(ctx context.Context, d *bus.Delivery) error {
	var in events.LayerIngested
	if err := d.Decode(&in); err != nil {
		return err
	}
	st := store.New(filepath.Join(s.StoreRoot, in.Job.CvmfsRepo))
	for _, l := range in.Image.Layers {
		if !st.HasLayer(l.Digest) {
			return nil // a later layer.ingested will find them all
		}
	}
	start := time.Now()
	present, err := s.flatten(ctx, st, in)
	if err != nil {
		if errors.Is(err, context.Canceled) || !d.LastAttempt() {
			return err
		}
		return s.fail(ctx, in, err)
	}
	flatRel, _ := filepath.Rel(st.Root, st.FlatDir(in.Image.ConfigDigest))
	out := events.ImageFlattened{Job: in.Job, Image: in.Image, FlatPath: filepath.ToSlash(flatRel), PublicPath: in.Image.Name,
		AlreadyPresent: present, Seconds: time.Since(start).Seconds()}
	// One id per wish and image: the layer.ingested events of one image all end here, and
	// JetStream keeps only the first image.flattened.
	env, err := events.New(events.ImageFlattenedType, source, events.ID(events.ImageFlattenedType, in.Job.WishID, in.Image.Digest), in.Job, in.Job.Image, out)
	if err != nil {
		return err
	}
	return s.Bus.Publish(ctx, env)
}

func (s *Service) flatten(ctx context.Context, st *store.Store, in events.LayerIngested) (present bool, err error) {
	img := in.Image
	log := s.Log.With("wish", in.Job.WishID, "image", in.Job.Image, "config", img.ConfigDigest)
	final := st.FlatDir(img.ConfigDigest)
	// The last layers of an image often arrive together: let one handler build while the
	// others wait and then find it present. Across processes the rename decides instead.
	mu, _ := s.building.LoadOrStore(final, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	present = st.HasFlat(img.ConfigDigest)
	if !present && s.Locks != nil {
		release, err := s.Locks.Lock(ctx, "flat."+store.Hex(img.ConfigDigest))
		if err != nil {
			return false, err
		}
		defer release()
		present = st.HasFlat(img.ConfigDigest) // built by the holder we waited for
	}
	if !present {
		layers := make([]flatten.Layer, 0, len(img.Layers))
		for _, l := range img.Layers {
			m, err := layer.ReadMeta(st.LayerMeta(l.Digest))
			if err != nil {
				return false, fmt.Errorf("layer %s: %w", l.Digest, err)
			}
			layers = append(layers, flatten.Layer{FS: st.LayerFS(l.Digest), Meta: m})
		}
		tmp, err := st.TempDir(final)
		if err != nil {
			return false, err
		}
		stats, err := flatten.Build(ctx, tmp, layers, flatten.Options{Logger: log})
		if err == nil {
			c := img.Config
			err = singularity.Write(tmp, singularity.Config{Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir})
		}
		if err != nil {
			_ = store.RemoveAll(tmp)
			return false, fmt.Errorf("flattening %s: %w", in.Job.Image, err)
		}
		won, err := st.Publish(tmp, final)
		if err != nil {
			return false, err
		}
		present = !won
		if s.Metrics != nil && won {
			s.Metrics.Images.WithLabelValues("built").Inc()
			s.Metrics.Bytes.Add(float64(stats.Bytes))
		}
		log.Info("flat root file system built", "files", stats.Files, "bytes", stats.Bytes, "published", won)
	}
	if present && s.Metrics != nil {
		s.Metrics.Images.WithLabelValues("present").Inc()
	}
	if _, err := store.SymlinkAtomic(publicTarget(img.Name, st.Root, final), st.PublicPath(img.Name)); err != nil {
		return present, err
	}
	// The stored manifest comes last: its presence is what "already converted" means.
	if _, err := store.WriteFileAtomic(st.ManifestPath(img.Name), img.Manifest, 0o644); err != nil {
		return present, err
	}
	return present, nil
}

// publicTarget is the relative symlink target from the public path to the flat directory,
// e.g. "../../.flat/0f/0f35…" for registry/library/ubuntu:22.04.
func publicTarget(name, root, flat string) string {
	depth := strings.Count(name, "/")
	rel, _ := filepath.Rel(root, flat)
	return strings.Repeat("../", depth) + filepath.ToSlash(rel)
}

func (s *Service) fail(ctx context.Context, in events.LayerIngested, cause error) error {
	s.Log.Error("flattening failed", "wish", in.Job.WishID, "image", in.Job.Image, "err", cause)
	img := in.Image
	env, err := events.Failed(source, events.ImageFailed{Job: in.Job, Image: &img, Stage: Name, Error: cause.Error()})
	if err != nil {
		return err
	}
	return s.Bus.Publish(ctx, env)
}
