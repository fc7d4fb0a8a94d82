package resolver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/events"
	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/multiarch"
	"flatbed.dev/pkg/store"
)

// sound says an image the store holds (r, judged converted by the stat checks of intact.go)
// still holds what it held when it was made: each layer what its layer.json tally counted when
// it was unpacked, the flat tree what the image's flatbed.json tally counted when it was
// built: files, their sizes, directories, symlinks. That is a walk with one lstat per entry
// and no file read (layer.Count), the check verify makes. What drifted (a file removed or
// truncated inside a layer, a flat tree changed) is taken apart so that the conversion that
// follows brings it back, as verify --repair does: the damaged layer's layerfs is removed
// (its origin.json stays; the ingester fetches that blob alone and unpacks it again) and the
// image's flat tree with it (its files may be the layer's, hard-linked); a drifted flat tree
// is removed and built again from the layers.
//
// Each layer and flat tree is walked at most once per run (the wishes of one correlation id,
// for at most checkTTL): 50 images on one base walk the base once. A later run, or a wish to
// a long-lived serve from another client, walks again, so damage is noticed at the next
// wish. TrustStore skips the walks. A mountless CernVM-FS repository is not walked: its
// read-only mount may be a plain client fetching catalogs over the network, and its files
// change only through published transactions. Layers streamed into CernVM-FS record the tally
// layer.Scan predicts from their tar, compared as the dir backend's are; where it cannot be
// predicted (devices, a path written twice in the layer, …) none is recorded and only the
// layer's presence is checked.
func (s *Service) sound(ctx context.Context, st *store.Store, job events.Job, r *resolution, log *slog.Logger) (bool, error) {
	if s.TrustStore {
		return true, nil
	}
	p := s.publisher(job.CvmfsRepo)
	if p != nil && p.Mountless {
		return true, nil
	}
	run := s.checks.run(cmp.Or(job.CorrelationID, job.WishID))
	ok := true
	for _, d := range r.Descs {
		img := d.Image
		meta, manifest := st.MetadataDir(img.Name), st.ManifestPath(img.Name)
		if r.Multi {
			meta = st.MultiarchMetadataDir(multiarch.DirOf(img.Platform), img.Name)
			manifest = filepath.Join(meta, "manifest.json")
		}
		layers, err := manifestLayers(manifest)
		if err != nil {
			log.Warn("the recorded manifest is unreadable: converting the image again", "path", manifest, "err", err)
			ok = false
			continue
		}
		damaged := false
		for _, l := range layers {
			drift, err := run.check("layer "+l, func() (string, error) {
				return s.mend(ctx, st, p, "layer", "layer."+store.Hex(l), st.LayerFS(l), func() string { return layerDrift(st, l) }, log)
			})
			if err != nil {
				return false, err
			}
			damaged = damaged || drift != ""
		}
		flat := st.FlatDir(img.ConfigDigest)
		drift, err := run.check("flat "+img.ConfigDigest, func() (string, error) {
			what := func() string { return flatDrift(flat, meta) }
			if damaged {
				what = func() string { return "built from a damaged layer" }
			}
			return s.mend(ctx, st, p, "flat", "flat."+store.Hex(img.ConfigDigest), flat, what, log)
		})
		if err != nil {
			return false, err
		}
		if damaged || drift != "" {
			ok = false
		}
	}
	return ok, nil
}

// mend removes dir (a layer's layerfs or a flat tree: part) when drift says it drifted,
// holding the lease key (the one its writer takes: an ingester's or a flattener's) and asking
// drift again under it, so what a writer has just made again is never taken for the damage.
// On CernVM-FS the removal is one transaction. It returns the drift found ("" for none); its
// errors (a lease, the file system, cvmfs_server) are a storeError: the wish is tried again.
func (s *Service) mend(ctx context.Context, st *store.Store, p *cvmfs.Publisher, part, key, dir string, drift func() string, log *slog.Logger) (string, error) {
	d := drift()
	if d == "" {
		return "", nil
	}
	if s.Locks != nil {
		held, release, err := events.Hold(ctx, s.Locks, key)
		if err != nil {
			return "", storeError{err}
		}
		defer release()
		ctx = held
		if d = drift(); d == "" {
			return "", nil
		}
	}
	if _, err := os.Lstat(dir); err != nil {
		return d, nil // nothing to remove
	}
	rel, _ := filepath.Rel(st.Root, dir)
	log.Warn("the store changed since the image was converted: removing what drifted to convert it again", "path", rel, "drift", d)
	remove := func() error {
		removeAll := store.RemoveAll
		if s.removeAll != nil {
			removeAll = s.removeAll
		}
		if err := removeAll(dir); err != nil {
			return fmt.Errorf("removing %s, which changed since it was made (%s): %w; remove it by hand or run verify --repair", dir, d, err)
		}
		s.Metrics.mended(part)
		return nil
	}
	var err error
	if p == nil {
		err = remove()
	} else {
		err = p.Transaction(ctx, func(string) error { return remove() })
	}
	if cannotWrite(err) {
		// A resolver deployed with the store mounted read-only (deploy/ does so) can find
		// damage but not remove it: trying again changes nothing, and the writers would
		// skip what is there, so say what to do instead of reporting the image converted.
		return "", events.Permanent(fmt.Errorf("%s in the store changed since it was made (%s), and this resolver cannot remove it (%w): run 'flatbed verify %s --repair' where the store is writable, give the resolver write access to the store, or start it with --trust-store to skip this check",
			rel, d, err, filepath.Base(st.Root)))
	}
	if err != nil {
		return "", storeError{err}
	}
	return d, nil
}

// cannotWrite says err is the file system refusing this process a change: a read-only mount
// or missing permission, which no retry mends.
func cannotWrite(err error) bool {
	return errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM)
}

// storeError is a failure to mend the store: not the wish's fault, so not permanent (the bus
// delivers the wish again, as for any other fault of this process's surroundings).
type storeError struct{ error }

func (e storeError) Unwrap() error { return e.error }

// layerDrift says how the layerfs of digest differs from the tally recorded when it was
// unpacked ("" when it does not, or nothing was recorded).
func layerDrift(st *store.Store, digest string) string {
	if !st.HasLayer(digest) {
		return "the layer is missing" // gone since intact.go looked (another run mending it)
	}
	m, err := layer.ReadMeta(st.LayerMeta(digest))
	if err != nil || m.Tally == nil {
		return "" // described before tallies were recorded (or unreadable): verify says so
	}
	return drifted(*m.Tally, st.LayerFS(digest))
}

// flatDrift says how the flat tree at flat differs from the tally recorded in the record in
// the metadata directory meta ("" when it does not, or nothing was recorded).
func flatDrift(flat, meta string) string {
	b, err := os.ReadFile(filepath.Join(meta, lifecycle.RecordFile))
	if err != nil {
		return ""
	}
	var rec lifecycle.Record
	if json.Unmarshal(b, &rec) != nil || rec.Flat == nil {
		return ""
	}
	if _, err := os.Stat(flat); err != nil {
		return ""
	}
	return drifted(*rec.Flat, flat)
}

// drifted counts dir and compares it with want.
func drifted(want layer.Tally, dir string) string {
	got, err := layer.Count(dir)
	if err != nil {
		return err.Error() // a file vanishing under the walk, an unreadable directory
	}
	return want.Diff(got)
}

// manifestLayers are the layer digests the manifest at path lists.
func manifestLayers(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) > events.MaxManifestBytes {
		return nil, fmt.Errorf("%s: %d bytes, more than a manifest may have", path, len(raw))
	}
	var m struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(m.Layers))
	for _, l := range m.Layers {
		if _, err := v1.NewHash(l.Digest); err != nil {
			return nil, fmt.Errorf("%s: layer digest %q", path, l.Digest)
		}
		out = append(out, l.Digest)
	}
	return out, nil
}

// checkTTL bounds how long one run's checks are trusted: a client that keeps one
// correlation id for days still has its store walked again.
const checkTTL = 10 * time.Minute

// keptRuns is how many runs' checks are kept at once (the oldest go first).
const keptRuns = 32

// checks remembers, per run, what was walked and what it found.
type checks struct {
	mu    sync.Mutex
	runs  map[string]*runChecks
	order []string // oldest first
}

type runChecks struct {
	mu    sync.Mutex
	since time.Time
	done  map[string]*checked
}

type checked struct {
	once  sync.Once
	drift string
	err   error
}

// run is the checks of run id, made afresh when it is older than checkTTL.
func (c *checks) run(id string) *runChecks {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.runs[id]; ok && time.Since(r.since) < checkTTL {
		return r
	}
	if c.runs == nil {
		c.runs = map[string]*runChecks{}
	}
	r := &runChecks{since: time.Now(), done: map[string]*checked{}}
	if _, ok := c.runs[id]; !ok {
		c.order = append(c.order, id)
	}
	c.runs[id] = r
	for len(c.order) > keptRuns {
		delete(c.runs, c.order[0])
		c.order = c.order[1:]
	}
	return r
}

// check runs fn once for key in this run and returns what it found; a failure is not kept
// (the next image tries again).
func (r *runChecks) check(key string, fn func() (string, error)) (string, error) {
	r.mu.Lock()
	c, ok := r.done[key]
	if !ok {
		c = &checked{}
		r.done[key] = c
	}
	r.mu.Unlock()
	c.once.Do(func() { c.drift, c.err = fn() })
	if c.err != nil {
		r.mu.Lock()
		if r.done[key] == c {
			delete(r.done, key)
		}
		r.mu.Unlock()
	}
	return c.drift, c.err
}

// publisher is the cvmfs_server publisher of the wish's repository, nil for a plain directory.
func (s *Service) publisher(cvmfsRepo string) *cvmfs.Publisher {
	if s.CVMFS == nil {
		return nil
	}
	return s.CVMFS(cvmfsRepo)
}
