package lifecycle

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"flatbed.dev/pkg/podman"
	"flatbed.dev/pkg/store"
)

// Locker hands out the leases conversions take before they build a layer ("layer.<hex>") or
// a flat tree ("flat.<hex>"); the bus's leases (events.Locker) satisfy it.
type Locker interface {
	Lock(ctx context.Context, key string) (release func(), err error)
}

// DefaultMinAge is how young an unused layer or flat tree always stays, whatever the grace
// period: a conversion in flight has unpacked layers that no recorded image names yet.
const DefaultMinAge = time.Hour

// CollectOptions tune Collect.
type CollectOptions struct {
	// Grace keeps unused layers and flat trees changed within this long (DUCC's
	// --grace-period, which counts days; 0: none).
	Grace time.Duration
	// MinAge: nothing younger is collected (0: DefaultMinAge; negative: no minimum).
	MinAge time.Duration
	DryRun bool
	// Locks, when set, makes each removal hold the lease a conversion would take for it.
	Locks Locker
	// InFlight, when set, names what conversions in flight need though no recorded image
	// names it yet: the digests of their layers and of their configs (which name flat
	// trees). That is kept whatever its age. It is asked at the scan, again before removing,
	// and again under each removal's lease, so with Locks it protects conversions without
	// a minimum age (the bus's in-flight images: cmd/flatbed inflight.go).
	InFlight func(ctx context.Context) (layers, configs []string, err error)
	Now      func() time.Time // for tests; nil: time.Now
}

// Collection is what Collect removed (or would remove) and what it kept unused, with why.
type Collection struct {
	Removed []string          // relative to the repository
	Kept    map[string]string // unused but kept: path -> reason
}

// Collect removes the layers and flat trees no image recorded in the store uses any more,
// once they are older than the grace period, and podman entries left without a name. An
// entry is renamed to a temporary name before it is removed, so a collection cut short never
// leaves a half-removed layer or tree under its final name.
func Collect(ctx context.Context, st *store.Store, o CollectOptions) (*Collection, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	minAge := o.MinAge
	if minAge == 0 {
		minAge = DefaultMinAge
	}
	keepFor := max(o.Grace, minAge)
	u, err := o.needed(ctx, st)
	if err != nil {
		return nil, err
	}
	c := &Collection{Kept: map[string]string{}}
	type candidate struct{ kind, hex, dir string }
	var cands []candidate
	for _, kind := range []string{"layer", "flat"} {
		top := st.LayersDir()
		inUse := u.layers
		if kind == "flat" {
			top, inUse = filepath.Join(st.Root, ".flat"), u.flats
		}
		dirs, err := entries(top)
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			hex := filepath.Base(d)
			if inUse[hex] {
				continue
			}
			rel, _ := filepath.Rel(st.Root, d)
			if u.flying(kind, hex) {
				c.Kept[filepath.ToSlash(rel)] = keptInFlight
				continue
			}
			age := now().Sub(changed(d, filepath.Join(d, ".metadata")))
			if age < keepFor {
				why := fmt.Sprintf("unused, changed %s ago: within the grace period of %s", age.Round(time.Second), o.Grace)
				if o.Grace < minAge {
					why = fmt.Sprintf("unused, changed %s ago: younger than %s (a conversion may be using it)", age.Round(time.Second), minAge)
				}
				c.Kept[filepath.ToSlash(rel)] = why
				continue
			}
			cands = append(cands, candidate{kind, hex, d})
		}
	}
	if o.DryRun {
		for _, k := range cands {
			rel, _ := filepath.Rel(st.Root, k.dir)
			c.Removed = append(c.Removed, filepath.ToSlash(rel))
		}
		return c, nil
	}
	// A conversion may have completed or started since the scan: look again before removing
	// anything.
	if u, err = o.needed(ctx, st); err != nil {
		return nil, err
	}
	for _, k := range cands {
		rel, _ := filepath.Rel(st.Root, k.dir)
		if u.uses(k.kind, k.hex) {
			continue
		}
		if u.flying(k.kind, k.hex) {
			c.Kept[filepath.ToSlash(rel)] = keptInFlight
			continue
		}
		removed, flying, err := remove(ctx, st, o, k.kind, k.hex, k.dir)
		if err != nil {
			return c, err
		}
		if flying {
			c.Kept[filepath.ToSlash(rel)] = keptInFlight
		}
		if removed {
			c.Removed = append(c.Removed, filepath.ToSlash(rel))
		}
	}
	if err := podman.RemoveUnnamed(st.Root); err != nil {
		return c, err
	}
	slices.Sort(c.Removed)
	return c, nil
}

// keptInFlight is why an unused layer or flat tree a conversion in flight needs was kept.
const keptInFlight = "unused, but a conversion in flight needs it"

// needs is what the store's recorded images use, and what conversions in flight need.
type needs struct {
	used
	inFlight used
}

func (n needs) uses(kind, hex string) bool {
	return (kind == "layer" && n.layers[hex]) || (kind == "flat" && n.flats[hex])
}

func (n needs) flying(kind, hex string) bool {
	return (kind == "layer" && n.inFlight.layers[hex]) || (kind == "flat" && n.inFlight.flats[hex])
}

// needed reads what the recorded images use and what the conversions in flight need.
func (o CollectOptions) needed(ctx context.Context, st *store.Store) (needs, error) {
	u, err := inUse(st)
	if err != nil {
		return needs{}, err
	}
	n := needs{used: u, inFlight: used{flats: map[string]bool{}, layers: map[string]bool{}}}
	if o.InFlight == nil {
		return n, nil
	}
	layers, configs, err := o.InFlight(ctx)
	if err != nil {
		return needs{}, fmt.Errorf("listing what conversions in flight need (nothing was removed since): %w", err)
	}
	for _, l := range layers {
		n.inFlight.layers[store.Hex(l)] = true
	}
	for _, c := range configs {
		n.inFlight.flats[store.Hex(c)] = true
	}
	return n, nil
}

// remove takes one layer or flat tree away under its lease: renamed to a temporary name
// (atomic), then deleted. flying says it was kept because a conversion in flight needs it.
func remove(ctx context.Context, st *store.Store, o CollectOptions, kind, hex, dir string) (removed, flying bool, err error) {
	if o.Locks != nil {
		release, err := o.Locks.Lock(ctx, kind+"."+hex)
		if err != nil {
			return false, false, fmt.Errorf("taking the lease on %s: %w", dir, err)
		}
		defer release()
		// Whoever held the lease may have just recorded an image that uses this, or started
		// a conversion that needs it (its event is on the bus before it looks at the store).
		n, err := o.needed(ctx, st)
		if err != nil {
			return false, false, err
		}
		if n.uses(kind, hex) {
			return false, false, nil
		}
		if n.flying(kind, hex) {
			return false, true, nil
		}
	}
	tmp := filepath.Join(filepath.Dir(dir), fmt.Sprintf(".tmp-%s-gc-%d", hex, time.Now().UnixNano()))
	if err := os.Rename(dir, tmp); err != nil {
		if os.IsNotExist(err) {
			return false, false, nil
		}
		return false, false, fmt.Errorf("removing %s: %w", dir, err)
	}
	if err := store.RemoveAll(tmp); err != nil {
		return false, false, fmt.Errorf("removing %s: %w", dir, err)
	}
	return true, false, nil
}

// entries lists the <xx>/<hex> directories of .layers or .flat, temporaries left out.
func entries(top string) ([]string, error) {
	shards, err := os.ReadDir(top)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range shards {
		if !s.IsDir() || isTemp(s.Name()) {
			continue
		}
		es, err := os.ReadDir(filepath.Join(top, s.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.IsDir() && !isTemp(e.Name()) {
				out = append(out, filepath.Join(top, s.Name(), e.Name()))
			}
		}
	}
	return out, nil
}

// changed is the latest change of any of paths: modification or inode change (a flat tree's
// mtime is the image's own, often decades old; its ctime is when it was published).
func changed(paths ...string) time.Time {
	var t time.Time
	for _, p := range paths {
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) != nil {
			continue
		}
		for _, ts := range []syscall.Timespec{st.Mtim, st.Ctim} {
			if u := time.Unix(ts.Sec, ts.Nsec); u.After(t) {
				t = u
			}
		}
	}
	return t
}
