package flatten

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
)

// removeDropped removes what the lower layers left at the paths where layer l has an entry
// the extractor did not keep (layer.Meta.Dropped: device nodes): in the image that entry
// replaced them. Like a whiteout it hides lower layers only, so it runs before l's entries.
func (b *builder) removeDropped(l Layer) error {
	for _, p := range l.Meta.Dropped {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		if err := removeBeneath(b.root, p); err != nil {
			return fmt.Errorf("layer %s: removing %s, replaced by an entry not kept: %w", layerName(l), p, err)
		}
		b.stats.Skipped++
	}
	return nil
}

// removeBeneath removes rel below root, recursively, if it is there. A parent that is missing,
// a file or a symlink means there is nothing to remove: nothing is reached through a symlink,
// and the layer's own directory replaces a lower symlink or file on the way anyway.
func removeBeneath(root int, rel string) error {
	p, base, err := beneath.OpenParent(root, rel, beneath.Path)
	switch {
	case errors.Is(err, beneath.ErrInvalidPath):
		return unreachable(err)
	case isUnreachable(err):
		return nil
	case err != nil:
		return err
	}
	defer unix.Close(p)
	_, err = beneath.RemoveAt(p, base)
	return err
}
