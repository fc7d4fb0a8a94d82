package layer

import (
	"archive/tar"
	"fmt"

	"golang.org/x/sys/unix"
)

// hardlink links rel to an earlier entry of this layer. A target this layer does not hold is
// a file of an earlier layer (layer tars store unchanged files only once): it cannot exist in
// this layerfs, so it is recorded in Meta.Links for the flattener. The target's parent is
// resolved like any entry path, so a link can never reach outside the root.
func (x *extractor) hardlink(hdr *tar.Header, pfd int, base, rel string) error {
	target, err := x.cleanPath(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target %s: %w", shortName(hdr.Linkname), err)
	}
	switch target {
	case "":
		return fmt.Errorf("%w: hard link to the layer root", ErrUnsafe)
	case rel:
		x.skip(rel, "hard link to itself")
		return nil
	}
	if _, ok := x.dropped[target]; ok {
		// In the image it is that device too: not the lower file of the same name.
		return x.drop(pfd, base, rel, fmt.Sprintf("hard link to %q, which is not kept", target))
	}
	tdir, tbase := splitRel(target)
	present := false
	tfd, err := x.openDir(tdir, false)
	if err == nil {
		defer unix.Close(tfd)
		var st unix.Stat_t
		switch err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); {
		case err == unix.ENOENT:
		case err != nil:
			return fmt.Errorf("inspecting hard link target %q: %w", target, err)
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			return fmt.Errorf("%w: hard link to directory %q", ErrUnsafe, target)
		default:
			// An overlay whiteout made by this layer stands for a deleted lower file.
			present = !x.isWhiteout(target)
		}
	} else if !isNotExist(err) {
		return fmt.Errorf("hard link target %q: %w", target, err)
	}

	if !present {
		if err := x.replace(pfd, base, rel); err != nil {
			return fmt.Errorf("replacing: %w", err)
		}
		x.meta.Links = append(x.meta.Links, Link{Path: rel, Target: target})
		x.linkPaths[rel] = struct{}{}
		return nil
	}
	// Flags 0: link the target itself, even if it is a symlink.
	err = unix.Linkat(tfd, tbase, pfd, base, 0)
	if err == unix.EEXIST {
		if err = x.replace(pfd, base, rel); err != nil {
			return fmt.Errorf("replacing: %w", err)
		}
		err = unix.Linkat(tfd, tbase, pfd, base, 0)
	}
	if err != nil {
		return fmt.Errorf("linking to %q: %w", target, err)
	}
	return nil
}
