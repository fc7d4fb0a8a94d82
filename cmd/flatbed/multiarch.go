package main

import (
	"context"
	"fmt"
	"strings"

	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/store"
	"flatbed.dev/pkg/wishlist"
)

// convertRepaired converts the images verify --repair took apart again, as they were
// converted: a multi-arch image (its record names platforms) with -m, so its public path
// stays the variant symlink over every platform, the others as wished.
func convertRepaired(ctx context.Context, g *globals, o *convertOpts, st *store.Store, wl *wishlist.Wishlist) error {
	var multi, plain []string
	for i, r := range wl.Refs() {
		if rec, err := lifecycle.ReadRecord(st, r.Name()); err == nil && rec != nil && len(rec.Platforms) > 0 {
			multi = append(multi, wl.Input[i])
		} else {
			plain = append(plain, wl.Input[i])
		}
	}
	if len(multi) == 0 {
		return convert(ctx, g, o, wl)
	}
	for _, group := range []struct {
		images []string
		multi  bool
	}{{plain, false}, {multi, true}} {
		if len(group.images) == 0 {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "version: 1\nuser: %q\ncvmfs_repo: %q\ninput:\n", wl.User, wl.CvmfsRepo)
		for _, img := range group.images {
			fmt.Fprintf(&b, "  - %q\n", img)
		}
		part, err := wishlist.Parse([]byte(b.String()), wl.Path)
		if err != nil {
			return err
		}
		oo := *o
		oo.multiArch = group.multi
		if err := convert(ctx, g, &oo, part); err != nil {
			return err
		}
	}
	return nil
}
