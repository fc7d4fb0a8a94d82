package ingester

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/store"
)

// Name is the service's name: its durable consumer and its CloudEvents source.
const Name = "ingester"

const source = "flatbed/" + Name

// Service ingests layers.
type Service struct {
	StoreRoot   string
	Bus         events.Publisher
	Log         *slog.Logger
	Registry    []registry.Option
	Concurrency int                  // layers unpacked at once by this process (--max-concurrent-downloads)
	MaxAttempts int                  // deliveries of one layer before it is declared failed
	Whiteouts   layer.WhiteoutFormat // "" = probe the store once
	Metrics     *Metrics
	// MaxLayerBytes bounds what one layer may unpack to (0: layer.DefaultMaxUncompressedBytes).
	MaxLayerBytes int64
	// Locks, when set, makes one ingester unpack a layer while others asking for it wait;
	// without it racing ingesters are still safe (the first rename wins) but do it twice.
	Locks events.Locker
	// CVMFS, when set and it gives a publisher for a wish's repository (--store-backend),
	// publishes that repository's layers through cvmfs_server (cvmfs.go) instead of
	// unpacking them in place.
	CVMFS func(cvmfsRepo string) *cvmfs.Publisher
	// Progress, when set, is told of each layer's compressed bytes as they arrive, n at a
	// time (an interactive convert draws them); a layer fetched again counts again.
	Progress func(in events.LayerRequested, n int64)

	clientOnce sync.Once
	client     *registry.Client // made from Registry at the first layer
}

// registry is what every layer's download goes through: each registry is pinged, and each
// repository's token fetched, once per process.
func (s *Service) registry() *registry.Client {
	s.clientOnce.Do(func() { s.client = registry.NewClient(s.Registry...) })
	return s.client
}

// Register adds the ingester's consumer to b.
func (s *Service) Register(ctx context.Context, b *bus.Bus) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics(prometheus.DefaultRegisterer)
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 4
	}
	return b.Handle(ctx, bus.Consumer{Name: Name, Types: events.Consumers()[Name], Concurrency: s.Concurrency, MaxAttempts: s.MaxAttempts}, s.Handle)
}

// Handle makes sure one layer is in the store and says so.
func (s *Service) Handle(ctx context.Context, d *bus.Delivery) error {
	var in events.LayerRequested
	if err := d.Decode(&in); err != nil {
		return err
	}
	l := in.Layer
	st, err := store.Open(s.StoreRoot, in.Job.CvmfsRepo)
	if err != nil {
		return events.Permanent(err)
	}
	start := time.Now()
	present := s.stored(st, in.Job.CvmfsRepo, l.Digest)
	if present && s.Locks != nil {
		// Garbage collection removes a layer under this lease after reading what the
		// conversions in flight need, this event among them by then: a layer found here
		// under the lease stays for this conversion; one removed meanwhile is ingested again.
		release, err := s.Locks.Lock(ctx, "layer."+store.Hex(l.Digest))
		if err != nil {
			return err
		}
		present = s.stored(st, in.Job.CvmfsRepo, l.Digest)
		release()
	}
	var fetched int64
	if present {
		// The store is keyed by the compressed digest; an image that claims another
		// uncompressed content for the same blob is inconsistent, whatever is stored.
		if err := sameDiffID(st, l, in.Job.Image); err != nil {
			return s.fail(ctx, in, l.Digest, err)
		}
		s.Metrics.Layers.WithLabelValues("present").Inc()
	} else {
		meta, err := s.ingest(ctx, st, in, l)
		if err != nil {
			if events.IsPermanent(err) {
				return s.fail(ctx, in, l.Digest, err) // reported here, naming the layer
			}
			return err // shutting down (handed back), or local trouble: the bus tries again later
		}
		if meta == nil { // another ingester published it first
			if err := sameDiffID(st, l, in.Job.Image); err != nil {
				return s.fail(ctx, in, l.Digest, err)
			}
			present = true
			s.Metrics.Layers.WithLabelValues("present").Inc()
		} else {
			fetched = meta.Size
			s.Metrics.Layers.WithLabelValues("unpacked").Inc()
			s.Metrics.Bytes.Add(float64(meta.Size))
			s.Metrics.Written.Add(float64(meta.UncompressedSize))
		}
	}
	if p := s.publisher(in.Job.CvmfsRepo); p != nil {
		if err := s.originCVMFS(ctx, st, p, l.Digest, in.Image.ConfigDigest); err != nil {
			return err
		}
	} else if err := addOrigin(st, l.Digest, in.Image.ConfigDigest); err != nil {
		return err
	}
	rel, _ := filepath.Rel(st.Root, st.LayerFS(l.Digest))
	out := events.LayerIngested{Job: in.Job, Image: in.Image, Index: in.Index, Layer: l, AlreadyPresent: present,
		Path: filepath.ToSlash(rel), Bytes: fetched, Seconds: time.Since(start).Seconds(), Again: in.Again}
	id := []string{in.Job.WishID, in.Image.Digest, l.Digest, fmt.Sprint(in.Index)}
	if in.Again > 0 {
		// The flattener asked again for a layer that went missing after its first
		// layer.ingested: this one must not be dropped as a duplicate of that.
		id = append(id, "again", fmt.Sprint(in.Again))
	}
	env, err := events.New(events.LayerIngestedType, source, events.ID(events.LayerIngestedType, id...), in.Job, in.Job.Image, out)
	if err != nil {
		return err
	}
	return s.Bus.Publish(ctx, env)
}

// ingest streams the layer blob into a temporary directory and renames it into place.
// It returns nil metadata when another ingester won the race (its copy is kept).
func (s *Service) ingest(ctx context.Context, st *store.Store, in events.LayerRequested, l events.Layer) (*layer.Meta, error) {
	log := s.Log.With("wish", in.Job.WishID, "image", in.Job.Image, "layer", l.Digest)
	ref, err := imageref.Parse(in.Job.Image)
	if err != nil {
		return nil, events.Permanent(err)
	}
	gref, err := ref.GGCR()
	if err != nil {
		return nil, events.Permanent(err)
	}
	ctx = registry.ContextWithScheme(ctx, ref.Scheme, ref.Registry) // never https for an http:// image, nor the reverse
	final := st.LayerDir(l.Digest)
	if s.Locks != nil {
		// Images share layers: whoever asks second waits for the first and finds it done.
		// The work stops when the lease is lost: another ingester may own the layer then.
		held, release, err := events.Hold(ctx, s.Locks, "layer."+store.Hex(l.Digest))
		if err != nil {
			return nil, err
		}
		defer release()
		ctx = held
		if s.stored(st, in.Job.CvmfsRepo, l.Digest) {
			return nil, nil
		}
	}
	if p := s.publisher(in.Job.CvmfsRepo); p != nil {
		if s.stored(st, in.Job.CvmfsRepo, l.Digest) {
			return nil, nil
		}
		return s.ingestCVMFS(ctx, st, p, in, gref.Context().Digest(l.Digest), log)
	}
	// A layer directory without its layerfs is damaged (or half removed): it is replaced, and
	// the images it recorded as using it are carried over to the new one.
	var origins []string
	if st.HasLayer(l.Digest) {
		return nil, nil // published by another ingester since the caller looked
	}
	if _, err := os.Lstat(final); err == nil {
		origins = readOrigins(st, l.Digest)
		log.Warn("layer directory without its layerfs; unpacking the layer again", "dir", final)
		if err := store.RemoveAll(final); err != nil {
			return nil, fmt.Errorf("removing the damaged layer directory %s: %w", final, err)
		}
	}
	tmp, err := st.TempDir(final)
	if err != nil {
		return nil, err
	}
	discard := func() { _ = store.RemoveAll(tmp) }
	wo := s.Whiteouts
	if wo == "" {
		wo = layer.DefaultWhiteouts(tmp)
	}
	// A download that breaks off, stalls or brings other bytes is fetched again by Do, up to
	// the registry timeout, like the registry's other faults.
	var meta *layer.Meta
	err = s.registry().Do(ctx, func(ro []remote.Option) error {
		var err error
		meta, err = s.unpack(ctx, filepath.Join(tmp, "layerfs"), gref.Context().Digest(l.Digest), ro, in, wo, log)
		return err
	})
	if err != nil {
		discard()
		return nil, classify(err)
	}
	if err := layer.WriteMeta(filepath.Join(tmp, ".metadata"), meta); err != nil {
		discard()
		return nil, err
	}
	won, err := st.Publish(tmp, final)
	if err != nil {
		discard()
		return nil, err
	}
	if !won {
		log.Info("layer published by another ingester; discarded this copy")
		return nil, nil
	}
	log.Info("layer unpacked", "bytes", meta.Size, "entries", meta.Entries, "whiteouts", meta.Whiteouts)
	if err := addOrigin(st, l.Digest, origins...); err != nil {
		return nil, err
	}
	return meta, nil
}

func (s *Service) fail(ctx context.Context, in events.LayerRequested, digest string, cause error) error {
	s.Log.Error("layer failed", "wish", in.Job.WishID, "image", in.Job.Image, "layer", digest, "err", cause)
	img := in.Image
	env, err := events.Failed(source, events.ImageFailed{Job: in.Job, Image: &img, Stage: Name, Layer: digest, Error: cause.Error()})
	if err != nil {
		return err
	}
	return s.Bus.Publish(ctx, env)
}

// unpack streams the layer blob into dir (made afresh), checking it as it goes: an error
// from the download is said to be one (Transient when another try may mend it).
func (s *Service) unpack(ctx context.Context, dir string, ref name.Digest, ro []remote.Option, in events.LayerRequested, wo layer.WhiteoutFormat, log *slog.Logger) (*layer.Meta, error) {
	l := in.Layer
	if err := store.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := mkdir(dir); err != nil {
		return nil, err
	}
	blob, err := s.openLayer(ref, ro, in)
	if err != nil {
		return nil, err
	}
	defer blob.Close()
	log.Debug("unpacking layer", "size", l.Size)
	stream := newBlobStream(blob, l.Digest, &s.Metrics.fetched)
	if s.Progress != nil {
		stream.progress = func(n int64) { s.Progress(in, n) }
	}
	meta, err := layer.Extract(ctx, stream, dir, layer.Want{Digest: l.Digest, DiffID: l.DiffID, MediaType: l.MediaType, Size: l.Size},
		layer.Options{Whiteouts: wo, Logger: log, MaxUncompressedBytes: s.MaxLayerBytes})
	if err != nil {
		if ctx.Err() == nil {
			if terr := stream.explain(l, in.Job.Image); terr != nil {
				return nil, terr
			}
		}
		return nil, fmt.Errorf("unpacking layer %s of %s: %w", l.Digest, in.Job.Image, err)
	}
	return meta, nil
}

// openLayer opens the layer's blob, saying what a refusal means.
func (s *Service) openLayer(ref name.Digest, ro []remote.Option, in events.LayerRequested) (io.ReadCloser, error) {
	l := in.Layer
	blob, err := openBlob(ref, ro)
	if err != nil {
		if registry.NotFound(err) {
			return nil, fmt.Errorf("layer %s of %s is not in the registry; the image may have been changed or deleted since it was resolved: convert it again (%w)",
				l.Digest, in.Job.Image, err)
		}
		if registry.Denied(err) {
			return nil, fmt.Errorf("the registry refused access to layer %s of %s; check the credentials for %s (%w)",
				l.Digest, in.Job.Image, ref.RegistryStr(), err)
		}
		return nil, fmt.Errorf("fetching layer %s of %s: %w", l.Digest, in.Job.Image, err)
	}
	return blob, nil
}

// classify marks what no new delivery can mend as events.Permanent: the registry's last word
// (the layer is missing or refused, the registry's faults outlasted the registry timeout, …)
// and a layer that is bad as published (unsafe entries, over a limit, malformed). The rest
// (the process stopping, a full disk) is left to the bus.
func classify(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	if registry.Final(err) || errors.Is(err, layer.ErrUnsafe) || errors.Is(err, layer.ErrLimit) || errors.Is(err, layer.ErrMalformed) {
		return events.Permanent(err)
	}
	return err
}
