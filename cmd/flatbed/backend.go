package main

import (
	"context"
	"fmt"

	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/store"
)

const storeBackendHelp = `how a repository's store is written, REPO=KIND (repeatable): dir (plain directories under --store-root, the default), ` +
	`cvmfs (a publisher node's cvmfs_server: layers streamed with ingest --catalog, the rest in transaction/publish on its mount at --store-root/REPO), ` +
	`cvmfs-ingest (mountless, for gateway publishers: everything through cvmfs_server ingest); cvmfs_server is $FLATBED_CVMFS_SERVER or found in PATH`

// parseBackends checks --store-backend once, before any command runs.
func (g *globals) parseBackends() error {
	kinds, err := cvmfs.ParseBackends(g.storeBackend)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	g.backends = kinds
	return nil
}

// cvmfsBackends gives each service the publisher of a repository whose store is CernVM-FS;
// locks (the bus's leases, nil: a flock on this machine) make one transaction per repository
// at a time across every process sharing them; when stop (the run's context) ends, on
// SIGTERM, an ingest running is killed and a transaction not yet published is aborted.
func (g *globals) cvmfsBackends(stop context.Context, locks cvmfs.Locker) *cvmfs.Backends {
	if len(g.backends) == 0 {
		return nil
	}
	return &cvmfs.Backends{Kinds: g.backends, StoreRoot: g.storeRoot, Locks: locks, Log: g.log, Stop: stop}
}

// publisherFunc is what a service takes: nil when no repository has a CernVM-FS backend.
func (g *globals) publisherFunc(stop context.Context, locks cvmfs.Locker) func(string) *cvmfs.Publisher {
	b := g.cvmfsBackends(stop, locks)
	if b == nil {
		return nil
	}
	return b.Publisher
}

// deleteThrough takes an image out of repo's store through its backend: as it is for a
// directory; inside one transaction on a publisher's mount; with ingest --delete mountless
// (the podman store, a set of files rewritten, is left as it is there: run
// create-podman-store on a publisher with a mount).
func deleteThrough(ctx context.Context, p *cvmfs.Publisher, st *store.Store, name string) ([]string, error) {
	switch {
	case p == nil:
		return lifecycle.Delete(st, name, false)
	case !p.Mountless:
		var removed []string
		err := p.Transaction(ctx, func(string) error {
			var err error
			removed, err = lifecycle.Delete(st, name, false)
			return err
		})
		return removed, err
	}
	removed, err := lifecycle.Delete(st, name, true)
	if err != nil {
		return nil, err
	}
	var paths, done []string
	for _, r := range removed {
		if r != name && r != ".metadata/"+name {
			continue // the podman entry
		}
		rel, err := p.Rel(st.Root + "/" + r)
		if err != nil {
			return nil, err
		}
		paths, done = append(paths, rel), append(done, r)
	}
	if err := p.Delete(ctx, paths...); err != nil {
		return nil, err
	}
	return done, nil
}

// collectThrough collects repo's unused layers and flat trees through its backend: on a
// publisher, what a dry run finds is removed inside one transaction (none when there is
// nothing to remove), or with ingest --delete mountless. The conversions' per-layer leases are
// not taken there: a conversion writes only inside the repository's transaction, which the
// collection holds, and the minimum age keeps what a conversion in flight has published.
func collectThrough(ctx context.Context, p *cvmfs.Publisher, st *store.Store, o lifecycle.CollectOptions) (*lifecycle.Collection, error) {
	if p == nil || o.DryRun {
		return lifecycle.Collect(ctx, st, o)
	}
	o.Locks = nil
	dry := o
	dry.DryRun = true
	c, err := lifecycle.Collect(ctx, st, dry)
	if err != nil || len(c.Removed) == 0 {
		return c, err
	}
	if !p.Mountless {
		err := p.Transaction(ctx, func(string) error {
			var err error
			c, err = lifecycle.Collect(ctx, st, o)
			return err
		})
		return c, err
	}
	var paths []string
	for _, r := range c.Removed {
		rel, err := p.Rel(st.Root + "/" + r)
		if err != nil {
			return nil, err
		}
		paths = append(paths, rel)
	}
	if err := p.Delete(ctx, paths...); err != nil {
		return nil, fmt.Errorf("collecting %s: %w", st.Root, err)
	}
	return c, nil
}

// publisherFor is repo's publisher (nil for a directory) for a command that changes the
// store, with the bus whose leases it takes when --nats names one (the caller closes it).
func publisherFor(ctx context.Context, g *globals, repo string) (*pipeline, *cvmfs.Publisher, error) {
	b := g.cvmfsBackends(ctx, nil)
	if b.Publisher(repo) == nil || g.natsURL == "" {
		return nil, b.Publisher(repo), nil
	}
	p, err := startPipeline(ctx, g, nil, "")
	if err != nil {
		return nil, nil, err
	}
	locks, err := p.bus.Locks(ctx)
	if err != nil {
		p.close()
		return nil, nil, err
	}
	b.Locks = locks
	return p, b.Publisher(repo), nil
}

// changeStore runs fn, which changes repo's store in place (verify --repair,
// create-podman-store): directly for a directory, inside one transaction on a publisher
// (aborted when fn fails); a mountless repository cannot be changed in place.
func changeStore(ctx context.Context, g *globals, repo, what string, fn func() error) error {
	p, pub, err := publisherFor(ctx, g, repo)
	if err != nil {
		return err
	}
	if p != nil {
		defer p.close()
	}
	switch {
	case pub == nil:
		return fn()
	case pub.Mountless:
		return fmt.Errorf("%s changes the store in place, which a mountless repository (--store-backend %s=cvmfs-ingest) cannot: run it on a publisher with %s=cvmfs", what, pub.Repo, pub.Repo)
	}
	return pub.Transaction(ctx, func(string) error { return fn() })
}
