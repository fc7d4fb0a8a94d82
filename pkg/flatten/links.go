package flatten

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
	"flatbed.dev/pkg/layer"
)

// stash pins the targets of a layer's cross-layer hard links (layer.Meta.Links) while the
// layer is applied: each target, as the lower layers left it, is hard-linked into a private
// directory of dst, and the layer's links are made to those pins afterwards. So a link keeps
// the lower file even when the same layer replaces or whites out the target, as in tar order.
type stash struct {
	name string // directory in the dst root; "" when the layer has no such links
	pins []int  // Links[i] is linked to pin pins[i]
}

// stashLinks pins the targets of l's Meta.Links.
func (b *builder) stashLinks(l Layer) (*stash, error) {
	links := l.Meta.Links
	if len(links) == 0 {
		return &stash{}, nil
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	s := &stash{name: ".flatten-links-" + hex.EncodeToString(rnd[:]), pins: make([]int, len(links))}
	if err := beneath.Mkdirat(b.root, s.name, 0o700); err != nil {
		return nil, fmt.Errorf("layer %s: creating hard-link stash: %w", layerName(l), err)
	}
	dir, err := beneath.OpenDir(b.root, s.name, beneath.Path)
	if err != nil {
		_ = s.discard(b)
		return nil, fmt.Errorf("layer %s: opening hard-link stash: %w", layerName(l), err)
	}
	defer unix.Close(dir)
	for i, ln := range links {
		s.pins[i] = i
		// A link to an earlier link of the same layer gets what that one got.
		if j := earlierLink(links[:i], ln.Target); j >= 0 {
			s.pins[i] = s.pins[j]
			continue
		}
		if err := pin(b.root, ln.Target, dir, strconv.Itoa(i)); err != nil {
			_ = s.discard(b)
			return nil, fmt.Errorf("layer %s: hard link %s -> %s: %w", layerName(l), ln.Path, ln.Target, err)
		}
	}
	return s, nil
}

// pin hard-links the file the lower layers left at target into dir as name. A target that
// is missing (also below a symlink or a file) or a directory is the image's fault.
func pin(root int, target string, dir int, name string) error {
	p, base, err := beneath.OpenParent(root, target, beneath.Path)
	var st unix.Stat_t
	if err == nil {
		defer unix.Close(p)
		err = unix.Fstatat(p, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	switch {
	case errors.Is(err, beneath.ErrInvalidPath):
		return unreachable(err)
	case isUnreachable(err):
		return fmt.Errorf("%w: the target does not exist in the lower layers (nor is any symlink on its way followed)", ErrMalformed)
	case err != nil:
		return err
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return fmt.Errorf("%w: the target is a directory in the lower layers (directories cannot be hard-linked)", ErrMalformed)
	}
	return unix.Linkat(p, base, dir, name, 0)
}

// earlierLink returns the index of the last link whose path is target, or -1.
func earlierLink(links []layer.Link, target string) int {
	for j := len(links) - 1; j >= 0; j-- {
		if links[j].Path == target {
			return j
		}
	}
	return -1
}

// link makes the layer's cross-layer hard links, replacing what dst has at their paths.
func (s *stash) link(b *builder, l Layer) error {
	if s.name == "" {
		return nil
	}
	dir, err := beneath.OpenDir(b.root, s.name, beneath.Path)
	if err != nil {
		return fmt.Errorf("layer %s: opening hard-link stash: %w", layerName(l), err)
	}
	defer unix.Close(dir)
	for i, ln := range l.Meta.Links {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		if err := linkFromStash(b.root, dir, strconv.Itoa(s.pins[i]), ln.Path); err != nil {
			return fmt.Errorf("layer %s: hard link %s -> %s: %w", layerName(l), ln.Path, ln.Target, err)
		}
		b.stats.Hardlinks++
	}
	return nil
}

func linkFromStash(root, dir int, pin, path string) error {
	p, base, err := beneath.OpenParent(root, path, beneath.Path)
	if err != nil {
		return unreachable(err)
	}
	defer unix.Close(p)
	if _, err := beneath.RemoveAt(p, base); err != nil {
		return err
	}
	return unix.Linkat(dir, pin, p, base, 0)
}

// discard removes the stash directory; the pinned inodes live on in their links.
func (s *stash) discard(b *builder) error {
	if s == nil || s.name == "" {
		return nil
	}
	_, err := beneath.RemoveAt(b.root, s.name)
	s.name = ""
	if err != nil {
		return fmt.Errorf("removing hard-link stash: %w", err)
	}
	return nil
}
