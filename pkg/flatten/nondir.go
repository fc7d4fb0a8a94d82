package flatten

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
)

// nonDir creates the regular file, symlink, device or fifo e in dst (where nothing has that
// name any more) with the metadata of the layerfs entry.
func (a *applier) nonDir(src, dst int, path string, e entry) error {
	switch e.st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return a.file(src, dst, path, e)
	case unix.S_IFLNK:
		target, err := readlinkAt(src, e.name)
		if err != nil {
			return err
		}
		// Verbatim: absolute, dangling or escaping targets are the image's business, and
		// nothing here ever resolves them.
		if err := unix.Symlinkat(target, dst, e.name); err != nil {
			return err
		}
		a.b.stats.Symlinks++
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if e.st.Mode&unix.S_IFMT != unix.S_IFIFO && !a.b.priv {
			a.b.stats.Skipped++
			a.b.log.Warn("skipping device node: not root", "layer", a.name, "path", path)
			return nil
		}
		if err := unix.Mknodat(dst, e.name, e.st.Mode&unix.S_IFMT|0o600, int(e.st.Rdev)); err != nil {
			return err
		}
		a.b.stats.Devices++
	default:
		a.b.stats.Skipped++
		a.b.log.Warn("skipping entry of unsupported type", "layer", a.name, "path", path,
			"mode", fmt.Sprintf("%o", e.st.Mode))
		return nil
	}
	return a.pathMeta(src, dst, path, e)
}

// file copies a regular file. Order matters: chown clears setuid/setgid bits and file
// capabilities, so xattrs and mode come after it, and times last.
func (a *applier) file(src, dst int, path string, e entry) error {
	if a.b.link {
		err := unix.Linkat(src, e.name, dst, e.name, 0)
		if err == nil {
			a.b.stats.Files++
			a.b.stats.Linked++
			return nil
		}
		if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EMLINK) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("linking: %w", err)
		}
		// Another file system, the link limit, or protected_hardlinks: copy this one.
		a.b.log.Debug("file copied, not linked", "layer", a.name, "path", path, "err", err)
	}
	s, err := unix.Openat(src, e.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	sf := os.NewFile(uintptr(s), e.name)
	defer sf.Close()
	d, err := unix.Openat(dst, e.name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	df := os.NewFile(uintptr(d), path)
	defer df.Close()
	// *os.File to *os.File: io.Copy uses copy_file_range, never the whole file in memory.
	n, err := io.Copy(df, sf)
	if err != nil {
		return err
	}
	a.b.stats.Files++
	a.b.stats.Bytes += n
	if a.b.priv {
		if err := unix.Fchown(d, int(e.st.Uid), int(e.st.Gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	a.copyXattrsFd(s, d, path)
	if err := unix.Fchmod(d, e.st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return setTimes(dst, e.name, e.st)
}

// pathMeta sets owner, xattrs, mode and times on a symlink, device or fifo: things that must
// not be opened (a fifo would block), so they are reached by name in dst.
func (a *applier) pathMeta(src, dst int, path string, e entry) error {
	if a.b.priv {
		if err := unix.Fchownat(dst, e.name, int(e.st.Uid), int(e.st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	a.copyXattrsPath(src, dst, e.name, path)
	if e.st.Mode&unix.S_IFMT != unix.S_IFLNK {
		// The entry was just made by mknod, so chmod by name cannot follow a symlink.
		if err := unix.Fchmodat(dst, e.name, e.st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	return setTimes(dst, e.name, e.st)
}

// setTimes copies atime and mtime without following a symlink.
func setTimes(dir int, name string, st unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dir, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// readlinkAt reads a symlink target of any length.
func readlinkAt(dir int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dir, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// linkBeneath makes dir/name a hard link to the file at rel below root, resolving rel
// without following symlinks.
func linkBeneath(root int, rel string, dir int, name string) error {
	p, base, err := beneath.OpenParent(root, rel, beneath.Path)
	if err != nil {
		return err
	}
	defer unix.Close(p)
	return unix.Linkat(p, base, dir, name, 0)
}
