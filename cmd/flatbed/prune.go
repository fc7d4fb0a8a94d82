package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"flatbed.dev/events"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/store"
)

func newPruneImages(g *globals) *cobra.Command {
	var dryRun bool
	var jobs int
	var wishlistPath string
	cmd := &cobra.Command{
		Use:   "prune-images REPO",
		Short: "Delete the images whose tag no longer exists in their registry",
		Long: `Ask, for every image recorded in repository REPO (multi-arch ones by their index), the
registry it was converted from whether its tag still exists (one HEAD of the manifest,
confirmed by a GET when the answer is 404), with the same credentials, --insecure,
--root-ca, --cert-dir, --client-cert/--client-key, DUCC_<R>_PROXY and --registry-timeout
as convert, and delete, as delete-image does, those whose tag the registry says is gone
(404, MANIFEST_UNKNOWN, NAME_UNKNOWN). An image pinned to a digest stays as long as the registry has that manifest. Their layers and
flat trees stay until garbage-collection.

Any other answer (refused credentials, a busy, rate-limiting or unreachable registry)
deletes nothing: the image is reported and the command exits 1 once the other images are
handled. A registry that does not answer at all is asked once, not once per image.

With --wishlist FILE, the images no input of that DUCC wishlist (whose cvmfs_repo must be
REPO) names any more are deleted too, without asking their registry: an input names an
image by its registry, repository and tag (a wildcard tag matched as expand-wildcard does)
or digest. Try it with --dry-run first.

Unless --dry-run, each deletion is announced by an image.deleted event, as for delete-image.

Exit status: 0 when every image was decided (kept or deleted); 1 when some image got no clear
answer or could not be deleted; 101 when the DUCC_<R>_* credentials set-up is incomplete;
102 and 103 for a --wishlist that cannot be read or parsed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := openRepo(g, args[0])
			if err != nil {
				return err
			}
			if err := registry.CheckEnv(); err != nil { // DUCC_<R>_* credentials, as convert
				return &exitError{exitNoPassword, err}
			}
			opts, err := g.registryOptions()
			if err != nil {
				return err
			}
			o := lifecycle.PruneOptions{Upstream: lifecycle.RegistryUpstream{Client: registry.NewClient(opts...)}, DryRun: dryRun, Jobs: jobs}
			if wishlistPath != "" {
				if o.Wished, err = wishedBy(wishlistPath, args[0]); err != nil {
					return err
				}
			}
			if !dryRun {
				del, done, err := pruneDeleter(ctx, g, args[0])
				if err != nil {
					return err
				}
				defer done()
				o.Delete = func(ctx context.Context, name string) ([]string, error) { return del(ctx, st, name) }
			}
			ps, err := lifecycle.Prune(ctx, st, o)
			if err != nil {
				return err
			}
			return reportPruned(ps, dryRun)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be removed, remove nothing")
	cmd.Flags().IntVar(&jobs, "jobs", 4, "images asked about at once")
	cmd.Flags().StringVar(&wishlistPath, "wishlist", "", "also delete the images no input of this DUCC wishlist names any more")
	return cmd
}

// wishedBy is the test of prune-images --wishlist: whether the wishlist at path, which must
// be for repo, still asks for an image.
func wishedBy(path, repo string) (func(string) bool, error) {
	wl, err := loadWishlist(path)
	if err != nil {
		return nil, err
	}
	if wl.CvmfsRepo != repo {
		return nil, &exitError{exitUsage, fmt.Errorf("--wishlist %s is for cvmfs_repo %q, not %q: its images say nothing about this repository", path, wl.CvmfsRepo, repo)}
	}
	if len(wl.Refs()) == 0 {
		return nil, &exitError{exitParseWishlist, fmt.Errorf("--wishlist %s asks for no image: it would prune every image, refused", path)}
	}
	return lifecycle.WishedBy(wl.Refs()), nil
}

// pruneDeleter is delete-image's removal and announcement, for repo: through its backend,
// with one bus for all the image.deleted events when --nats names one.
func pruneDeleter(ctx context.Context, g *globals, repo string) (func(context.Context, *store.Store, string) ([]string, error), func(), error) {
	p, pub, err := publisherFor(ctx, g, repo)
	if err != nil {
		return nil, nil, err
	}
	if p == nil && g.natsURL != "" {
		if p, err = startPipeline(ctx, g, nil, ""); err != nil {
			return nil, nil, err
		}
	}
	done := func() {
		if p != nil {
			p.close()
		}
	}
	del := func(ctx context.Context, st *store.Store, name string) ([]string, error) {
		removed, err := deleteThrough(ctx, pub, st, name)
		if err != nil {
			return nil, err
		}
		return removed, announce(ctx, g, p, events.ImageDeletedType, name, imageDeleted(repo, name, removed))
	}
	return del, done, nil
}

// reportPruned prints what prune-images did, image by image, and fails naming the registries
// that gave no clear answer.
func reportPruned(ps []lifecycle.Pruned, dryRun bool) error {
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	gone, there := 0, 0
	var failed []string
	registries := map[string]bool{}
	for _, p := range ps {
		switch {
		case p.Unwished:
			fmt.Printf("unwished %s: no input of the wishlist names it\n", p.Name)
		case p.Gone:
			fmt.Printf("gone %s: %s no longer has %s\n", p.Name, p.Upstream.Registry, p.Upstream)
		}
		for _, r := range p.Removed {
			fmt.Printf("%s %s\n", verb, r)
		}
		switch {
		case p.Err != nil:
			fmt.Printf("failed %s: %v\n", p.Name, p.Err)
			failed = append(failed, p.Name)
			if !p.Gone && p.Upstream.Registry != "" {
				registries[p.Upstream.Registry] = true
			}
		case p.Gone:
			gone++
		default:
			there++
		}
	}
	what := "pruned"
	if dryRun {
		what = "would prune"
	}
	fmt.Printf("%s %d of %d images: %d still in their registry, %d not decided\n", what, gone, len(ps), there, len(failed))
	if len(failed) == 0 {
		return nil
	}
	regs := make([]string, 0, len(registries))
	for r := range registries {
		regs = append(regs, r)
	}
	slices.Sort(regs)
	if len(regs) == 0 {
		return &exitError{exitSomeFailed, fmt.Errorf("%d image(s) gone from their registry could not be deleted: see the failed lines", len(failed))}
	}
	return &exitError{exitSomeFailed, fmt.Errorf("%d image(s) not pruned, kept without a clear answer from registry %s: run prune-images again once it answers", len(failed), strings.Join(regs, ", "))}
}
