package layer

import (
	"archive/tar"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// writerOnly hides (*os.File).ReadFrom, so io.CopyBuffer uses our pooled buffer instead of
// the 32 KiB one ReadFrom's generic fallback allocates per call.
type writerOnly struct{ io.Writer }

// regular writes a regular file from src. It is opened O_EXCL|O_NOFOLLOW (an existing entry
// of the same name is removed first, never written through) and write-only, so even a 0000
// file can be filled; its mode is set after chown, which would clear setuid/setgid.
func (x *extractor) regular(hdr *tar.Header, src io.Reader, pfd int, base, rel string) error {
	// archive/tar expands sparse files: hdr.Size is the logical size, which is what lands on
	// disk. Count it before creating anything, so a 1 TiB sparse file fails at once.
	x.files += hdr.Size
	if over(x.files, x.lim.bytes) {
		return bytesLimitError(fmt.Sprintf("files (this one %d bytes; sparse files count at their full size) add up to", hdr.Size), x.lim.bytes)
	}
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(pfd, base, flags, 0o600)
	if err == unix.EEXIST {
		if err = x.replace(pfd, base, rel); err != nil {
			return fmt.Errorf("replacing: %w", err)
		}
		fd, err = unix.Openat(pfd, base, flags, 0o600)
	}
	if err != nil {
		return fmt.Errorf("creating file: %w", err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()

	bp := bufPool.Get().(*[]byte)
	_, err = io.CopyBuffer(writerOnly{f}, src, *bp)
	bufPool.Put(bp)
	if err != nil {
		return fmt.Errorf("copying content: %w", err)
	}
	if x.isRoot {
		if err := f.Chown(hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("changing owner to %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
	}
	if err := unix.Fchmod(fd, perm(hdr)); err != nil {
		return fmt.Errorf("changing mode: %w", err)
	}
	// After chown and chmod: chown drops security.capability.
	x.setXattrsFd(fd, rel, hdr)
	if err := setTimesAt(pfd, base, hdr); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing file: %w", err)
	}
	return nil
}

// symlink keeps the target verbatim: it is data, never resolved here (absolute, dangling or
// pointing above the root are all fine inside a layerfs, as nothing follows them while
// unpacking).
func (x *extractor) symlink(hdr *tar.Header, pfd int, base, rel string) error {
	if len(hdr.Linkname) > symlinkMax {
		return fmt.Errorf("%w: symlink target is %d bytes, more than the kernel's %d (PATH_MAX, fixed)", ErrLimit, len(hdr.Linkname), symlinkMax)
	}
	if hdr.Linkname == "" {
		x.skip(rel, "symlink with an empty target")
		return nil
	}
	err := unix.Symlinkat(hdr.Linkname, pfd, base)
	if err == unix.EEXIST {
		if err = x.replace(pfd, base, rel); err != nil {
			return fmt.Errorf("replacing: %w", err)
		}
		err = unix.Symlinkat(hdr.Linkname, pfd, base)
	}
	if err != nil {
		return fmt.Errorf("creating symlink to %q: %w", hdr.Linkname, err)
	}
	if err := x.chownAt(pfd, base, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	x.setXattrsAt(pfd, base, rel, hdr)
	return setTimesAt(pfd, base, hdr)
}

// harmlessChar are the character devices a layer may keep: pseudo-devices that give no
// access to hardware or kernel memory, whoever opens them (major:minor as on Linux).
var harmlessChar = map[[2]int64]string{
	{1, 3}: "null", {1, 5}: "zero", {1, 7}: "full", {1, 8}: "random", {1, 9}: "urandom", {5, 0}: "tty",
}

// node makes a fifo, or one of the harmless character devices. Every other device node is
// dropped (see drop): the store is served to and read on other hosts, and a block device
// or a /dev/mem-like node with the image's permissions would hand its raw device to any user
// there (a 0/0 character device would moreover act as an overlay whiteout). Without the
// privilege to make a device (not root) it is dropped as well; runtimes provide their own
// /dev anyway.
func (x *extractor) node(hdr *tar.Header, pfd int, base, rel string) error {
	var kind uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		kind = unix.S_IFCHR
		if _, ok := harmlessChar[[2]int64{hdr.Devmajor, hdr.Devminor}]; !ok {
			return x.drop(pfd, base, rel, fmt.Sprintf("character device %d:%d not kept (only null, zero, full, random, urandom and tty are)", hdr.Devmajor, hdr.Devminor))
		}
	case tar.TypeBlock:
		return x.drop(pfd, base, rel, fmt.Sprintf("block device %d:%d not kept", hdr.Devmajor, hdr.Devminor))
	default:
		kind = unix.S_IFIFO
	}
	dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	err := unix.Mknodat(pfd, base, kind|perm(hdr), dev)
	if err == unix.EEXIST {
		if err = x.replace(pfd, base, rel); err != nil {
			return fmt.Errorf("replacing: %w", err)
		}
		err = unix.Mknodat(pfd, base, kind|perm(hdr), dev)
	}
	if err == unix.EPERM || err == unix.EACCES {
		return x.drop(pfd, base, rel, fmt.Sprintf("device node not permitted: %v", err))
	}
	if err != nil {
		return fmt.Errorf("creating device node: %w", err)
	}
	if err := x.chownAt(pfd, base, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	// Plain fchmodat follows symlinks, but base is the node just made. Mknod applied the
	// umask and chown may have cleared setgid, so set the mode explicitly.
	if err := unix.Fchmodat(pfd, base, perm(hdr), 0); err != nil {
		return fmt.Errorf("changing mode: %w", err)
	}
	x.setXattrsAt(pfd, base, rel, hdr)
	return setTimesAt(pfd, base, hdr)
}
