package flatten

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/layer"
)

// Layer is one unpacked layer as the store keeps it.
type Layer struct {
	FS   string      // the layer's layerfs directory
	Meta *layer.Meta // whiteout format, hard links to earlier layers, entries not kept
}

// Options tune Build.
type Options struct {
	Logger *slog.Logger // nil: no logging
	// LinkFiles makes each regular file of the tree a hard link to the layer's file instead
	// of a copy: the flat tree then costs no second copy of the contents. The layer's file
	// already has exactly the owner, mode, times and xattrs a copy would get. Nothing ever
	// writes into a file of a tree (files are replaced whole, by a new name and a rename),
	// so a layer's files never change. Where a link cannot be made (another file system,
	// the file system's link limit), the file is copied (copy_file_range: a reflink where
	// the file system can).
	LinkFiles bool
}

// Stats counts what Build wrote, summed over all layers (an entry a later layer replaces or
// deletes is still counted for the layer that wrote it).
type Stats struct {
	Layers    int
	Files     int64 // regular files copied or linked
	Linked    int64 // of them, hard links to the layer's file (Options.LinkFiles)
	Dirs      int64 // directories created or merged
	Symlinks  int64
	Hardlinks int64 // hard links made, within a layer and from Meta.Links
	Devices   int64 // device nodes and fifos
	Whiteouts int64 // whiteouts and opaque markers applied
	Skipped   int64 // entries that could not be reproduced (devices when not root, sockets, layer.Meta.Dropped)
	Bytes     int64 // bytes of regular-file content copied
}

// Build applies layers (lowest first) into dst, which must exist and be empty: typically a
// temporary directory the caller renames into place once Build succeeded. Nothing is ever
// written through a symlink found in dst. On error dst holds a partial tree to discard.
func Build(ctx context.Context, dst string, layers []Layer, opts Options) (*Stats, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	root, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dst, err)
	}
	defer unix.Close(root)

	b := &builder{
		ctx:     ctx,
		log:     log,
		root:    root,
		priv:    os.Geteuid() == 0,
		link:    opts.LinkFiles,
		trusted: hasCapability(capSysAdmin),
		dirs:    map[string]dirMeta{},
	}
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return &b.stats, err
		}
		if l.Meta == nil {
			return &b.stats, fmt.Errorf("layer %d (%s): no metadata", i, l.FS)
		}
		if err := b.applyLayer(l); err != nil {
			return &b.stats, err
		}
		b.stats.Layers++
	}
	if err := b.finishDirs(); err != nil {
		return &b.stats, err
	}
	return &b.stats, nil
}

// builder is the state shared by all layers of one Build.
type builder struct {
	ctx     context.Context
	log     *slog.Logger
	root    int  // fd of dst
	priv    bool // root: may chown and mknod
	link    bool // hard-link regular files to the layer's (Options.LinkFiles)
	trusted bool // may read trusted.* xattrs (overlay opaque markers)
	dirs    map[string]dirMeta
	stats   Stats
}

// layerName names a layer in errors and logs.
func layerName(l Layer) string {
	if l.Meta != nil && l.Meta.Digest != "" {
		return l.Meta.Digest
	}
	return l.FS
}

// applyLayer copies one layer over what the lower layers left in dst.
func (b *builder) applyLayer(l Layer) error {
	name := layerName(l)
	switch l.Meta.Whiteouts {
	case layer.WhiteoutOverlay, layer.WhiteoutOCI:
	default:
		return fmt.Errorf("layer %s: unknown whiteout format %q", name, l.Meta.Whiteouts)
	}
	if l.Meta.Whiteouts == layer.WhiteoutOverlay && !b.trusted {
		// Only CAP_SYS_ADMIN sees trusted.* xattrs: opaque markers would be silently missed.
		return fmt.Errorf("layer %s: reading overlay whiteouts needs CAP_SYS_ADMIN (run the flattener as root with that capability, like the ingester that wrote them)", name)
	}
	before := b.stats
	b.log.Debug("applying layer", "layer", name, "fs", l.FS, "whiteouts", l.Meta.Whiteouts)

	// Targets of cross-layer links are pinned before this layer's entries run, because the
	// layer may itself replace or delete them and the link must keep the lower file.
	st, err := b.stashLinks(l)
	if err != nil {
		return err
	}
	defer st.discard(b) // on early returns; a no-op after the explicit discard below

	src, err := unix.Open(l.FS, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("layer %s: opening %s: %w", name, l.FS, err)
	}
	defer unix.Close(src)
	if err := b.removeDropped(l); err != nil {
		return err
	}

	a := &applier{b: b, l: l, name: name, inodes: map[inode]string{}, keep: st.name, implicit: map[string]bool{}}
	for _, p := range l.Meta.ImplicitDirs {
		a.implicit[p] = true
	}
	// The extractor never takes a layer's "./" entry, so a layerfs root carries no image
	// metadata: the flat root keeps what the caller made.
	if err := a.dir(src, b.root, ""); err != nil {
		return err
	}
	if err := st.link(b, l); err != nil {
		return err
	}
	if err := st.discard(b); err != nil {
		return fmt.Errorf("layer %s: %w", name, err)
	}
	b.log.Debug("applied layer", "layer", name,
		"files", b.stats.Files-before.Files, "dirs", b.stats.Dirs-before.Dirs,
		"bytes", b.stats.Bytes-before.Bytes, "whiteouts", b.stats.Whiteouts-before.Whiteouts)
	return nil
}

// isNotExist reports errors that mean "nothing there" for a path inside dst.
func isNotExist(err error) bool {
	return errors.Is(err, unix.ENOENT)
}
