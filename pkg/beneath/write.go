package beneath

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// WriteFile replaces whatever is at rel by a new regular file holding data, with mode
// exactly (the umask does not apply). Nothing at rel is ever opened: a symlink, fifo or
// device there is replaced, not written through, and a directory is removed with all it
// holds. rel's parent must be a directory.
func (r *Root) WriteFile(rel string, data []byte, mode os.FileMode) error {
	err := r.replace(rel, func(dir int, tmp string) error {
		const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
		fd, err := unix.Openat(dir, tmp, flags, 0o600)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), tmp)
		_, err = f.Write(data)
		if err == nil {
			err = unix.Fchmod(fd, unixMode(mode))
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", rel, err)
	}
	return nil
}
