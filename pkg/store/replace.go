package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Replace puts the finished temporary directory tmp in place of final, which may exist: the
// two are exchanged in one rename (renameat2 RENAME_EXCHANGE), so readers see the old tree or
// the new one, never neither, and the old tree is then removed. On a file system that cannot
// exchange, final is moved aside first, and is missing for the moment between two renames.
func (s *Store) Replace(tmp, final string) error {
	defer releaseTemp(tmp)
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		// tmp now holds the old tree: a dead writer's temporary if we stop before removing it.
	case errors.Is(err, unix.ENOENT):
		if _, err := s.Publish(tmp, final); err != nil {
			return err
		}
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		aside := tmp + "-old"
		if err := os.Rename(final, aside); err != nil {
			return fmt.Errorf("moving %s aside: %w", final, err)
		}
		if err := os.Rename(tmp, final); err != nil {
			_ = os.Rename(aside, final)
			return fmt.Errorf("replacing %s: %w", final, err)
		}
		tmp = aside
	default:
		return fmt.Errorf("replacing %s: %w", final, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return err
	}
	if err := RemoveAll(tmp); err != nil {
		return fmt.Errorf("removing the replaced %s (now %s): %w", final, tmp, err)
	}
	return nil
}
