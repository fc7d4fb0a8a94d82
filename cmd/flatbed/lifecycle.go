package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"flatbed.dev/events"
	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/podman"
	"flatbed.dev/pkg/store"
	"flatbed.dev/pkg/wishlist"
)

// checkRepoArg checks a REPO argument. DUCC's users know a repository by its path on a
// publisher (/cvmfs/unpacked.cern.ch): given a path, the error says which --store-root and
// name mean it.
func checkRepoArg(g *globals, repo string) error {
	err := wishlist.CheckRepo(repo)
	if err == nil {
		return nil
	}
	if strings.HasPrefix(repo, "/") || strings.HasPrefix(repo, ".") {
		abs, _ := filepath.Abs(repo)
		err = fmt.Errorf("%w; REPO is the repository's name, a directory under --store-root (now %s): for %s give --store-root %s %s",
			err, g.storeRoot, abs, filepath.Dir(abs), filepath.Base(abs))
	}
	return &exitError{exitParseWishlist, fmt.Errorf("REPO argument: %w", err)}
}

// openRepo opens repository repo under --store-root, which must exist.
func openRepo(g *globals, repo string) (*store.Store, error) {
	if err := checkRepoArg(g, repo); err != nil {
		return nil, err
	}
	st, err := store.Open(g.storeRoot, repo)
	if err != nil {
		return nil, &exitError{exitParseWishlist, err}
	}
	if fi, err := os.Stat(st.Root); err != nil || !fi.IsDir() {
		return nil, &exitError{exitNoRepository, fmt.Errorf("repository %s does not exist under --store-root %s", repo, g.storeRoot)}
	}
	return st, nil
}

// storeName turns an image argument into its name in the store (registry/repository:tag).
func storeName(arg string) (string, error) {
	ref, err := imageref.Parse(arg)
	if err != nil {
		return "", &exitError{exitParseWishlist, fmt.Errorf("IMAGE argument: %w", err)}
	}
	return ref.Name(), nil
}

func newDeleteImage(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "delete-image REPO IMAGE",
		Short: "Take an image out of a repository: its public path, recorded manifest and podman entry",
		Long: `Take an image out of repository REPO: its public path, its recorded manifest and its
podman store entry. Its layers and flat tree stay until garbage-collection finds that no
other image uses them. IMAGE is written as in a wishlist (the scheme is ignored).

Unless --dry-run, an image.deleted event says so on the bus: --nats, or the embedded
server of --state-dir (kept in its stream; when a running flatbed holds that directory,
through the URL it listens on, else only a warning on the log).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openRepo(g, args[0])
			if err != nil {
				return err
			}
			name, err := storeName(args[1])
			if err != nil {
				return err
			}
			var p *pipeline
			var pub *cvmfs.Publisher
			if !dryRun {
				if p, pub, err = publisherFor(cmd.Context(), g, args[0]); err != nil {
					return err
				}
				if p != nil {
					defer p.close()
				}
			}
			var removed []string
			if dryRun {
				removed, err = lifecycle.Delete(st, name, true)
			} else {
				removed, err = deleteThrough(cmd.Context(), pub, st, name)
			}
			if err != nil {
				return err
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, r := range removed {
				fmt.Printf("%s %s\n", verb, r)
			}
			if dryRun {
				return nil
			}
			return announce(cmd.Context(), g, p, events.ImageDeletedType, name, imageDeleted(args[0], name, removed))
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be removed, remove nothing")
	return cmd
}

// imageDeleted is the image.deleted event of what lifecycle.Delete removed.
func imageDeleted(repo, name string, removed []string) *events.ImageDeleted {
	e := &events.ImageDeleted{CvmfsRepo: repo, Name: name, Removed: []string{}}
	for _, r := range removed {
		if r == podman.Dir+" entry "+name {
			e.PodmanEntry = true
		} else {
			e.Removed = append(e.Removed, r)
		}
	}
	return e
}

// storeCollected is the store.collected event of a collection.
func storeCollected(repo string, graceDays int, c *lifecycle.Collection) *events.StoreCollected {
	listed := c.Removed[:min(len(c.Removed), events.MaxListed)]
	return &events.StoreCollected{CvmfsRepo: repo, Removed: append([]string{}, listed...), RemovedCount: len(c.Removed),
		KeptCount: len(c.Kept), GraceDays: graceDays}
}

func newGarbageCollection(g *globals) *cobra.Command {
	var dryRun bool
	var graceDays int
	var minAge time.Duration
	cmd := &cobra.Command{
		Use:     "garbage-collection REPO",
		Aliases: []string{"gc"},
		Short:   "Remove the layers and flat trees no recorded image uses any more",
		Long: `Remove from repository REPO the layers and flat trees that no recorded image uses any more
(after delete-image, or a tag that moved), once they are older than the grace period, and
podman store entries left without a name.

Safe while conversions run: nothing younger than --min-age (default 1h) is removed, since a
conversion in flight has layers no recorded image names yet; with --nats, each removal also
holds the lease a conversion takes for that layer or flat tree, and looks again under it, and
what the conversions in flight on that server need (each image with a layer event still in
the pipeline stream, from its resolution until it is recorded) is kept whatever its age, so
there --min-age may be lowered, even to -1s.

Unless --dry-run, a store.collected event lists what was removed, on the bus as for
delete-image.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openRepo(g, args[0])
			if err != nil {
				return err
			}
			if graceDays < 0 {
				return fmt.Errorf("--grace-period %d: want 0 days or more", graceDays)
			}
			o := lifecycle.CollectOptions{Grace: time.Duration(graceDays) * 24 * time.Hour, MinAge: minAge, DryRun: dryRun}
			var p *pipeline
			if g.natsURL != "" && !dryRun {
				p, err = startPipeline(cmd.Context(), g, nil, "")
				if err != nil {
					return err
				}
				defer p.close()
				locks, err := p.bus.Locks(cmd.Context())
				if err != nil {
					return err
				}
				o.Locks = locks
				o.InFlight = inFlight(p.bus, args[0]) // inflight.go
			}
			pub := g.cvmfsBackends(cmd.Context(), o.Locks).Publisher(args[0])
			c, err := collectThrough(cmd.Context(), pub, st, o)
			if err != nil {
				return err
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, r := range c.Removed {
				fmt.Printf("%s %s\n", verb, r)
			}
			kept := make([]string, 0, len(c.Kept))
			for p := range c.Kept {
				kept = append(kept, p)
			}
			slices.Sort(kept)
			for _, p := range kept {
				fmt.Printf("kept %s: %s\n", p, c.Kept[p])
			}
			if dryRun {
				return nil
			}
			return announce(cmd.Context(), g, p, events.StoreCollectedType, args[0], storeCollected(args[0], graceDays, c))
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be removed, remove nothing")
	cmd.Flags().IntVar(&graceDays, "grace-period", 0, "keep unused paths changed within this many days (DUCC's unit; 0: none)")
	cmd.Flags().DurationVar(&minAge, "min-age", lifecycle.DefaultMinAge, "never remove anything younger (protects conversions in flight; negative: no minimum)")
	return cmd
}

func newVerify(g *globals) *cobra.Command {
	var repair bool
	o := &convertOpts{skipThin: true, timeout: 2 * time.Hour}
	cmd := &cobra.Command{
		Use:   "verify REPO [IMAGE...]",
		Short: "Check a repository against what it records; --repair converts the damaged images again",
		Long: `Check repository REPO (or only the named images) against what it records: every public path
links to its flat tree, every flat tree and layer is there and holds what it held when it was
published (files, sizes, directories, symlinks), no temporary is left behind.

With --repair, what is damaged is removed (a damaged layer takes the flat trees built from it
along, since their files are the layer's) and the images concerned are converted again, as
they were wished. Exit status: 0 when the repository is sound (or repaired), 1 otherwise.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openRepo(g, args[0])
			if err != nil {
				return err
			}
			var names []string
			for _, a := range args[1:] {
				n, err := storeName(a)
				if err != nil {
					return err
				}
				names = append(names, n)
			}
			problems, err := lifecycle.Verify(st, names...)
			if err != nil {
				return err
			}
			for _, p := range problems {
				fmt.Println(p)
			}
			if len(problems) == 0 {
				fmt.Printf("%s: sound\n", st.Root)
				return nil
			}
			if !repair {
				return &exitError{exitSomeFailed, fmt.Errorf("%d problem(s) in %s: run verify --repair to convert the damaged images again", len(problems), st.Root)}
			}
			var again []string
			err = changeStore(cmd.Context(), g, args[0], "verify --repair", func() (err error) {
				again, err = lifecycle.Repair(st, problems)
				return err
			})
			if err != nil {
				return err
			}
			if len(again) == 0 {
				return nil
			}
			var b strings.Builder
			fmt.Fprintf(&b, "version: 1\nuser: ''\ncvmfs_repo: %q\ninput:\n", args[0])
			for _, img := range again {
				fmt.Fprintf(&b, "  - %q\n", img)
			}
			wl, err := wishlist.Parse([]byte(b.String()), "verify --repair")
			if err != nil {
				return err
			}
			return convertRepaired(cmd.Context(), g, o, st, wl) // -m for multi-arch images (multiarch.go)
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "remove what is damaged and convert the images concerned again")
	return cmd
}

func newCreatePodmanStore(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "create-podman-store REPO",
		Short: "List every image of a repository in its podman store (podmanStore/)",
		Long: `List every image recorded in repository REPO in its podman additional image store,
REPO/podmanStore: configure podman with additionalimagestores = ["<store-root>/REPO/podmanStore"]
in storage.conf. Conversions keep it up to date (unless -p); this rebuilds it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := openRepo(g, args[0])
			if err != nil {
				return err
			}
			var added []string
			var skipped map[string]string
			err = changeStore(cmd.Context(), g, args[0], "create-podman-store", func() (err error) {
				added, skipped, err = lifecycle.PodmanStore(st)
				return err
			})
			for _, n := range added {
				fmt.Printf("listed %s\n", n)
			}
			for n, why := range skipped {
				fmt.Printf("skipped %s: %s\n", n, why)
			}
			if err != nil {
				return err
			}
			if len(skipped) > 0 {
				return &exitError{exitSomeFailed, errors.New("some images could not be listed")}
			}
			return nil
		},
	}
}
