package beneath

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SymlinkReplace replaces whatever is at rel by a symlink to target, which is stored as it
// is and never resolved. A directory at rel is removed with all it holds. rel's parent must
// be a directory.
func (r *Root) SymlinkReplace(target, rel string) error {
	err := r.replace(rel, func(dir int, tmp string) error {
		return unix.Symlinkat(target, dir, tmp)
	})
	if err != nil {
		return fmt.Errorf("linking %s to %s: %w", rel, target, err)
	}
	return nil
}
