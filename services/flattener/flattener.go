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
	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/flatten"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/podman"
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
	// Descriptions holds what each image is made of (its layers and config).
	Descriptions events.Descriptions
	// CopyFiles copies the layers' files into each flat tree. By default they are hard links
	// to the layers' files: no second copy of the contents (see flatten.Options.LinkFiles).
	CopyFiles bool
	// CVMFS, when set and it gives a publisher for a wish's repository (--store-backend),
	// writes that repository's flat trees, public paths and metadata inside one
	// cvmfs_server transaction per image (cvmfs.go).
	CVMFS func(cvmfsRepo string) *cvmfs.Publisher
	// Joins remembers the layers each wish saw ingested, so that one that goes missing from
	// the store before the image is flattened is requested again (join.go). Register opens
	// the bus's bucket; without it the records are kept in memory.
	Joins Joins

	joinsOnce sync.Once
	building  sync.Map // flat directory -> *sync.Mutex: one build per image in this process
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
	if s.Joins == nil {
		j, err := openJoins(ctx, b)
		if err != nil {
			return err
		}
		s.Joins = j
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: events.Consumers()[Name], Concurrency: s.Concurrency, MaxAttempts: s.MaxAttempts}, s.Handle)
}

// Handle is called once per ingested layer. Only when every layer of the image is in the
// store does it flatten: the store is the join's state, so it survives restarts and
// redeliveries, and the last layer to arrive (whichever ingester brought it) triggers the flat.
// A layer reported ingested that is no longer there is requested again (join.go).
func (s *Service) Handle(ctx context.Context, d *bus.Delivery) error {
	var in events.LayerIngested
	if err := d.Decode(&in); err != nil {
		return err
	}
	st, err := store.Open(s.StoreRoot, in.Job.CvmfsRepo)
	if err != nil {
		return events.Permanent(err)
	}
	if err := store.CheckName(in.Image.Name); err != nil {
		return events.Permanent(fmt.Errorf("image name: %w", err))
	}
	desc, err := s.Descriptions.Get(ctx, in.Image)
	if err != nil {
		if errors.Is(err, events.ErrNoDescription) {
			return events.Permanent(err)
		}
		return err
	}
	if gone := missing(st, desc); len(gone) > 0 {
		// A later layer.ingested will find them all, unless one was ingested and then
		// removed: that one is requested again (join.go).
		err = s.await(ctx, in, desc, gone)
	} else {
		err = s.flatten(ctx, st, in, desc)
	}
	if err != nil && !errors.Is(err, context.Canceled) && (d.LastAttempt() || events.IsPermanent(err)) {
		return s.fail(ctx, in, err)
	}
	return err
}

// flatten builds the flat tree of the image unless it is there (for -g, builds it again and
// swaps it in), links the public path, records the manifest and publishes image.flattened,
// all while holding the image's lease: of the layer.ingested events of one image that all
// end here, the handler that built the tree publishes first, so the one event JetStream keeps
// for the wish says it was built. On CernVM-FS the changes are published (cvmfs_server
// publish) before image.flattened is, and an image with nothing to change opens no
// transaction at all (inplace.go).
func (s *Service) flatten(ctx context.Context, st *store.Store, in events.LayerIngested, desc *events.Description) error {
	img := in.Image
	log := s.Log.With("wish", in.Job.WishID, "image", in.Job.Image, "config", img.ConfigDigest)
	final := st.FlatDir(img.ConfigDigest)
	start := time.Now()
	mu, _ := s.building.LoadOrStore(final, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if s.Locks != nil {
		// The work stops when the lease is lost: another flattener may own the tree then.
		held, release, err := events.Hold(ctx, s.Locks, "flat."+store.Hex(img.ConfigDigest))
		if err != nil {
			return err
		}
		defer release()
		ctx = held
	}
	if p := s.mountless(in.Job.CvmfsRepo); p != nil {
		return s.flattenMountless(ctx, p, st, in, desc, final, start, log) // mountless.go
	}
	present := st.HasFlat(img.ConfigDigest)
	again := present && rebuild(final, in.Job)
	if present && !again {
		// Everything may be in place already: then nothing is written, no transaction opened.
		dry := &writes{dry: true}
		if env, err := s.finish(ctx, st, in, desc, final, true, start, log, dry); err == nil && !dry.changed {
			s.countPresent()
			return s.publish(ctx, env)
		}
	}
	tx, err := s.begin(ctx, in.Job.CvmfsRepo)
	if err != nil {
		return err
	}
	defer tx.Abort()
	if !present || again {
		won, err := s.build(ctx, st, in, desc, final, again, log)
		if err != nil {
			return err
		}
		present = !won
	}
	if present {
		s.countPresent()
	}
	env, err := s.finish(ctx, st, in, desc, final, present, start, log, &writes{})
	if err != nil {
		return err
	}
	// Published before anyone hears of it: image.flattened means the files are visible.
	if err := tx.Commit(ctx, filepath.Join(st.Root, ".flat"), filepath.Dir(final), final); err != nil {
		return err
	}
	return s.publish(ctx, env)
}

func (s *Service) countPresent() {
	if s.Metrics != nil {
		s.Metrics.Images.WithLabelValues("present").Inc()
	}
}

// publish publishes env; nil (a platform of a multi-arch image whose others are missing) is
// nothing to publish.
func (s *Service) publish(ctx context.Context, env *events.Envelope) error {
	if env == nil {
		return nil
	}
	return s.Bus.Publish(ctx, env)
}

// finish makes, through w, everything but the flat tree at final: the public path, the
// record, config and manifest, the podman entry (or, for a platform of a multi-arch image,
// platformDone's); it returns the image.flattened to publish once that is visible (nil for a
// platform whose image is not complete yet).
func (s *Service) finish(ctx context.Context, st *store.Store, in events.LayerIngested, desc *events.Description, final string, present bool,
	start time.Time, log *slog.Logger, w *writes) (*events.Envelope, error) {
	img := in.Image
	if multi(in) {
		return s.platformDone(ctx, st, in, desc, final, present, start, log, w) // multiarch.go
	}
	if err := w.symlink(publicTarget(img.Name, st.Root, final), st.PublicPath(img.Name)); err != nil {
		return nil, err
	}
	tally, err := record(st, img, in.Job.Image, final, !present, w)
	if err != nil {
		return nil, err
	}
	if err := w.file(filepath.Join(st.MetadataDir(img.Name), lifecycle.ConfigFile), desc.RawConfig); err != nil {
		return nil, err
	}
	flatRel, _ := filepath.Rel(st.Root, final)
	var podmanSeconds float64
	if !in.Job.SkipPodman {
		podmanStart := time.Now()
		// The tree was just counted: the podman store need not walk it again for its size.
		if err := w.podman(st.Root, podman.Image{Name: img.Name, ConfigDigest: img.ConfigDigest, ManifestDigest: img.Digest,
			Manifest: desc.Manifest, Config: desc.RawConfig, FlatDir: filepath.ToSlash(flatRel), Size: tally.Bytes}); err != nil {
			return nil, err
		}
		if !w.dry {
			podmanSeconds = time.Since(podmanStart).Seconds()
		}
	}
	// The stored manifest comes last: its presence is what "already converted" means.
	if err := w.file(st.ManifestPath(img.Name), desc.Manifest); err != nil {
		return nil, err
	}
	out := events.ImageFlattened{Job: in.Job, Image: img, FlatPath: filepath.ToSlash(flatRel), PublicPath: img.Name,
		AlreadyPresent: present, Seconds: time.Since(start).Seconds(), Podman: !in.Job.SkipPodman, PodmanSeconds: podmanSeconds}
	return events.New(events.ImageFlattenedType, source, events.ID(events.ImageFlattenedType, in.Job.WishID, img.Digest), in.Job, in.Job.Image, out)
}

// build makes the flat tree in a temporary directory and renames it into place; won is false
// when another process published it first. With again (-g) it replaces the tree there.
func (s *Service) build(ctx context.Context, st *store.Store, in events.LayerIngested, desc *events.Description, final string, again bool, log *slog.Logger) (won bool, err error) {
	layers := make([]flatten.Layer, 0, len(desc.Layers))
	for _, l := range desc.Layers {
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
	stats, err := flatten.Build(ctx, tmp, layers, flatten.Options{Logger: log, LinkFiles: !s.CopyFiles})
	if err == nil {
		c := desc.Config
		err = singularity.Write(tmp, singularity.Config{Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir})
	}
	if err != nil {
		_ = store.RemoveAll(tmp)
		err = fmt.Errorf("flattening %s: %w", in.Job.Image, err)
		if permanent(err) {
			err = events.Permanent(err)
		}
		return false, err
	}
	if again {
		won, err = true, st.Replace(tmp, final)
	} else {
		won, err = st.Publish(tmp, final)
	}
	if err != nil {
		return false, err
	}
	if s.Metrics != nil && won {
		s.Metrics.Images.WithLabelValues("built").Inc()
		s.Metrics.Bytes.Add(float64(stats.Bytes))
	}
	log.Info("flat root file system built", "files", stats.Files, "bytes", stats.Bytes, "published", won, "replaced", again)
	return won, nil
}

// permanent says flattening cannot succeed however often it is tried: the image's layers are
// malformed (hard links to directories or to nothing, …).
func permanent(err error) bool {
	return errors.Is(err, layer.ErrMalformed) || errors.Is(err, layer.ErrUnsafe) || errors.Is(err, layer.ErrLimit)
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
	msg := cause.Error()
	if multi(in) {
		msg = "platform " + img.Platform + ": " + msg // the others are not published without it
	}
	env, err := events.Failed(source, events.ImageFailed{Job: in.Job, Image: &img, Stage: Name, Error: msg})
	if err != nil {
		return err
	}
	return s.Bus.Publish(ctx, env)
}
