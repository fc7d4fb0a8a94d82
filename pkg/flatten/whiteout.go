package flatten

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/layer"
)

const (
	whPrefix = ".wh."
	whOpaque = ".wh..wh..opq"
)

// entry is one child of a layerfs directory.
type entry struct {
	name string
	st   unix.Stat_t
}

// changes is what one layerfs directory does to the same directory of the lower layers.
type changes struct {
	opaque    bool     // drop everything the lower layers put there
	whiteouts []string // names the lower layers put there to drop
	entries   []entry  // this layer's own children, to copy
}

// classify splits the children of the layerfs directory src by the layer's whiteout format.
// Whiteouts are not copied; they only say what to remove from dst.
func classify(src int, rel string, format layer.WhiteoutFormat, names []string) (changes, error) {
	var c changes
	if format == layer.WhiteoutOverlay {
		c.opaque = isOpaqueDir(src)
	}
	for _, n := range names {
		if format == layer.WhiteoutOCI && strings.HasPrefix(n, whPrefix) {
			switch {
			case n == whOpaque:
				c.opaque = true
			case strings.HasPrefix(n, whPrefix+whPrefix):
				// Other ".wh..wh." names are AUFS bookkeeping, never content.
			default:
				// ".wh.." or ".wh..." would name the directory itself or its parent.
				if w := strings.TrimPrefix(n, whPrefix); w != "" && w != "." && w != ".." {
					c.whiteouts = append(c.whiteouts, w)
				}
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(src, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return c, fmt.Errorf("stat %s: %w", join(rel, n), err)
		}
		if format == layer.WhiteoutOverlay && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			c.whiteouts = append(c.whiteouts, n)
			continue
		}
		c.entries = append(c.entries, entry{name: n, st: st})
	}
	return c, nil
}

// isOpaqueDir reports the overlayfs opaque marker on the directory fd.
func isOpaqueDir(fd int) bool {
	buf := make([]byte, 8)
	n, err := unix.Fgetxattr(fd, layer.OpaqueXattr, buf)
	return err == nil && string(buf[:n]) == "y"
}
