package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/store"
)

// Upstream says whether an image is still where it was converted from.
type Upstream interface {
	// Gone is true, with a nil error, only when the registry answered that ref's tag (or, for
	// an image pinned to a digest, its manifest) does not exist: 404, MANIFEST_UNKNOWN,
	// NAME_UNKNOWN. Every other answer (refused credentials, a busy or unreachable registry,
	// an untrusted certificate) is an error, and never a reason to remove anything.
	Gone(ctx context.Context, ref imageref.Ref) (bool, error)
}

// RegistryUpstream asks registries through a registry.Client (its credentials, TLS settings,
// DUCC_<R>_PROXY and retry policy): one HEAD of the manifest, which no pull limit counts;
// a HEAD answered 404 is confirmed by a GET, since a HEAD has no body to name the error and
// some registries and proxies answer HEAD requests they do not implement with 404.
type RegistryUpstream struct{ Client *registry.Client }

// Gone implements Upstream.
func (u RegistryUpstream) Gone(ctx context.Context, ref imageref.Ref) (bool, error) {
	gref, err := ref.GGCR()
	if err != nil {
		return false, err
	}
	ctx = registry.ContextWithScheme(ctx, ref.Scheme, ref.Registry) // the image's scheme only
	gone := false
	err = u.Client.Do(ctx, func(ro []remote.Option) error {
		_, err := remote.Head(gref, ro...)
		if err == nil || !registry.NotFound(err) {
			return err
		}
		_, err = remote.Get(gref, ro...)
		gone = registry.NotFound(err)
		if gone {
			return nil
		}
		return err
	})
	return gone, err
}

// PruneOptions tune Prune.
type PruneOptions struct {
	Upstream Upstream
	DryRun   bool
	// Jobs is how many images are asked about at once (0: 4).
	Jobs int
	// Delete removes one image whose tag is gone (nil: Delete(st, name, false)); the CLI
	// passes its backend's, which also announces image.deleted. Not called in a dry run.
	Delete func(ctx context.Context, name string) ([]string, error)
	// Wished, when set, says whether a wishlist still asks for the image recorded as name
	// (WishedBy); one it does not is pruned without asking its registry.
	Wished func(name string) bool
}

// WishedBy says whether one of refs (a wishlist's inputs) names the image recorded as name:
// the same registry and repository, and its tag (a wildcard matched as expand-wildcard
// does) or its digest.
func WishedBy(refs []imageref.Ref) func(name string) bool {
	return func(name string) bool {
		r, err := imageref.Parse(name)
		if err != nil {
			return true // not a name a wishlist could hold: never pruned for that
		}
		for _, w := range refs {
			if !strings.EqualFold(w.Registry, r.Registry) || w.Repository != r.Repository {
				continue
			}
			if r.Tag != "" && w.MatchesTag(r.Tag) || r.Tag == "" && r.Digest == w.Digest {
				return true
			}
		}
		return false
	}
}

// Pruned is what Prune found out about one recorded image.
type Pruned struct {
	Name     string       // in the store
	Upstream imageref.Ref // what the registry was asked about
	Gone     bool         // the registry says it no longer exists, or no wish names it
	Unwished bool         // pruned because the wishlist no longer asks for it
	Removed  []string     // what was (with DryRun: would be) removed, relative to the repository
	Err      error        // no answer that allows a decision, or the removal failed
}

// Prune asks, for every image recorded in the store (multi-arch ones by their index), the
// registry it was converted from whether its tag still exists, and deletes the images whose
// tag the registry says is gone, as delete-image does. An image pinned to a digest is asked
// about by that digest, so it stays as long as its manifest does. An image the registry gave
// no clear answer for is kept and reported with its error. Each registry is asked about one
// image before the others: when it does not answer at all, its other images are kept
// unasked, each reported so. With o.Wished, an image no wish names any more is deleted
// without asking its registry. Once ctx ends nothing more is deleted. The results are in the
// store's order of names; the error is for a store that cannot be read.
func Prune(ctx context.Context, st *store.Store, o PruneOptions) ([]Pruned, error) {
	if o.Upstream == nil {
		return nil, errors.New("prune: no upstream to ask")
	}
	images, err := Images(st)
	if err != nil {
		return nil, err
	}
	out := make([]Pruned, len(images))
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	// One image of each registry is asked first: a registry that does not answer costs one
	// registry timeout, not one per image.
	var order []string
	byRegistry := map[string][]*Pruned{}
	for i, img := range images {
		p := &out[i]
		p.Name = img.Name
		if o.Wished != nil && !o.Wished(img.Name) {
			p.Gone, p.Unwished = true, true
			continue
		}
		ref, err := upstreamRef(st, img.Name)
		if err != nil {
			p.Err = fmt.Errorf("cannot tell which registry to ask: %w", err)
			continue
		}
		p.Upstream = ref
		if byRegistry[ref.Registry] == nil {
			order = append(order, ref.Registry)
		}
		byRegistry[ref.Registry] = append(byRegistry[ref.Registry], p)
	}
	sem := make(chan struct{}, jobs)
	ask := func(p *Pruned) {
		sem <- struct{}{}
		defer func() { <-sem }()
		p.Gone, p.Err = o.Upstream.Gone(ctx, p.Upstream)
		if p.Err != nil {
			p.Gone = false // never removed on an unclear answer
			p.Err = fmt.Errorf("asking %s about %s: %w", p.Upstream.Registry, p.Upstream, p.Err)
		}
	}
	var wg sync.WaitGroup
	for _, reg := range order {
		ps := byRegistry[reg]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ask(ps[0])
			if ps[0].Err != nil && unreachable(ps[0].Err) {
				for _, p := range ps[1:] {
					p.Err = fmt.Errorf("not asked: registry %s did not answer for %s", reg, ps[0].Name)
				}
				return
			}
			var rest sync.WaitGroup
			for _, p := range ps[1:] {
				rest.Add(1)
				go func() { defer rest.Done(); ask(p) }()
			}
			rest.Wait()
		}()
	}
	wg.Wait()
	del := o.Delete
	if del == nil {
		del = func(_ context.Context, name string) ([]string, error) { return Delete(st, name, false) }
	}
	for i := range out {
		p := &out[i]
		if !p.Gone {
			continue
		}
		if err := ctx.Err(); err != nil && !o.DryRun {
			p.Err = fmt.Errorf("not deleted: %w", err)
			continue
		}
		if o.DryRun {
			p.Removed, p.Err = Delete(st, p.Name, true)
		} else {
			p.Removed, p.Err = del(ctx, p.Name)
		}
		if p.Err != nil && p.Unwished {
			p.Err = fmt.Errorf("deleting %s, which the wishlist no longer asks for: %w", p.Name, p.Err)
		} else if p.Err != nil {
			p.Err = fmt.Errorf("deleting %s, whose tag %s no longer has: %w", p.Name, p.Upstream.Registry, p.Err)
		}
	}
	return out, nil
}

// unreachable is an error that came with no answer from the registry at all (refused, reset,
// stalled, a name that does not resolve, TLS that fails): asking it about its other images
// would only wait as long again.
func unreachable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	_, answered := registry.Status(err)
	return !answered
}

// upstreamRef is what to ask about the image recorded as name: the image as it was wished
// (its scheme, and its digest when it was pinned to one), else the name itself over https.
func upstreamRef(st *store.Store, name string) (imageref.Ref, error) {
	scheme := imageref.DefaultScheme
	if rec, err := ReadRecord(st, name); err == nil && rec != nil && rec.Image != "" {
		if r, err := imageref.Parse(rec.Image); err == nil {
			if !r.Wildcard() && r.Name() == name {
				return r, nil
			}
			scheme = r.Scheme
		}
	}
	return imageref.Parse(scheme + "://" + name)
}
