package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/wishlist"
)

// expandWildcards returns the images wl asks for, each wildcard tag expanded against its
// repository's tag list (see wishlist.Expand), and the wildcard inputs that gave none. The
// front door expands, as DUCC does, so that no event ever carries a wildcard.
func expandWildcards(ctx context.Context, g *globals, wl *wishlist.Wishlist) ([]wishlist.Image, []*wishlist.WildcardError) {
	imgs, gaveNone := wl.Expand(ctx, func(ctx context.Context, r imageref.Ref) ([]string, error) {
		repo, err := r.GGCRRepository()
		if err != nil {
			return nil, err
		}
		ctx = registry.ContextWithScheme(ctx, r.Scheme, r.Registry)
		opts, err := g.registryOptions()
		if err != nil {
			return nil, err
		}
		tags, err := registry.Tags(ctx, repo, opts...)
		if err != nil {
			return nil, registry.Explain(err)
		}
		return tags, nil
	})
	perInput := map[int]int{}
	for _, img := range imgs {
		perInput[img.Input]++
	}
	for i, r := range wl.Refs() {
		if r.Wildcard() && perInput[i] > 0 {
			g.log.Info("wildcard expanded", "input", wl.Input[i], "images", perInput[i])
		}
	}
	return imgs, gaveNone
}

// reportGaveNone prints a line for each wildcard input that gave no image, saying whether
// ignoreErrors matches it, and returns how many it does not match.
func reportGaveNone(wl *wishlist.Wishlist, gaveNone []*wishlist.WildcardError, line func(format string, args ...any)) (failed int) {
	for _, e := range gaveNone {
		if wl.Ignored(e.Image) {
			line("%-17s %s: %v (ignored: matches ignoreErrors)\n", "failed", e.Image, e)
			continue
		}
		failed++
		line("%-17s %s: %v\n", "FAILED", e.Image, e)
	}
	return failed
}

func newExpandWildcard(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "expand-wildcard WISHLIST",
		Short: "Print the images a wishlist asks for, its wildcard tags expanded",
		Long: `Print the images a DUCC v1 wishlist asks for, one a line, as convert and loop would
wish them: an input with a wildcard tag ('*' standing for any characters, matching a whole
tag) becomes every tag of its repository that it matches, read from the registry's tag list.
A wildcard that matches no tag, or whose tags cannot be listed, is reported on stderr and
makes the exit status 1 (also when ignoreErrors matches it: it is then said so).

Exit status: 0 every wildcard gave an image, 1 some did not, 102/103 the wishlist cannot be
read/parsed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			wl, err := loadWishlist(args[0])
			if err != nil {
				return err
			}
			imgs, gaveNone := expandWildcards(cmd.Context(), g, wl)
			for _, img := range imgs {
				fmt.Fprintln(cmd.OutOrStdout(), img.Ref.String())
			}
			reportGaveNone(wl, gaveNone, func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), format, args...) })
			if len(gaveNone) > 0 {
				return &exitError{exitSomeFailed, fmt.Errorf("%d wildcard input(s) of %s gave no image", len(gaveNone), wl.Path)}
			}
			return nil
		},
	}
}
