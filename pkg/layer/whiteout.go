package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	whPrefix = ".wh."
	whMeta   = ".wh..wh."     // AUFS bookkeeping (".wh..wh.plnk", ".wh..wh.aufs"), never content
	whOpaque = ".wh..wh..opq" // the directory hides all lower content
)

// aufsMeta reports whether rel is, or lies below, AUFS bookkeeping other than the opaque
// marker; such entries describe the exporting host, not the image, and are dropped as
// Docker does.
func aufsMeta(rel string) bool {
	for c := range strings.SplitSeq(rel, "/") {
		if strings.HasPrefix(c, whMeta) && c != whOpaque {
			return true
		}
	}
	return false
}

func (x *extractor) isWhiteout(rel string) bool {
	_, ok := x.whiteouts[rel]
	return ok
}

// overlayWhiteout turns an OCI marker into what overlayfs reads. The OCI rule that a
// whiteout only hides lower layers is kept in both orders: a same-layer entry already
// present makes the whiteout moot (skipped), and one coming later replaces the char device
// (see replace and walkDir). The opaque marker only sets an xattr, so siblings from this
// layer stay wherever the marker comes in the tar.
func (x *extractor) overlayWhiteout(hdr *tar.Header, dirRel, base, rel string) error {
	if base == whOpaque {
		fd, err := x.openDir(dirRel, true)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// O_PATH fds refuse xattr calls; reopen the verified directory for real.
		dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening opaque directory: %w", err)
		}
		defer unix.Close(dfd)
		if err := unix.Fsetxattr(dfd, OpaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("marking directory opaque: %w", err)
		}
		return nil
	}
	name := strings.TrimPrefix(base, whPrefix)
	if name == "" || name == "." || name == ".." {
		x.skip(rel, "malformed whiteout")
		return nil
	}
	hidden := joinRel(dirRel, name)
	pfd, err := x.openDir(dirRel, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)

	var st unix.Stat_t
	err = unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	_, linked := x.linkPaths[hidden]
	if err == nil || linked {
		x.skip(rel, "whiteout of an entry of the same layer")
		return nil
	}
	if err != unix.ENOENT {
		return fmt.Errorf("inspecting %s: %w", hidden, err)
	}
	if err := unix.Mknodat(pfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("creating whiteout device %s (needs root; use the OCI whiteout format otherwise): %w", hidden, err)
	}
	x.whiteouts[hidden] = struct{}{}
	if err := x.chownAt(pfd, name, 0, 0); err != nil {
		return err
	}
	return setTimesAt(pfd, name, hdr)
}

// ociWhiteout returns the header of the empty regular file that keeps an OCI marker as is,
// whatever type the tar gave it (some tools hard-link all whiteouts to one file).
func ociWhiteout(hdr *tar.Header) *tar.Header {
	h := *hdr
	h.Typeflag = tar.TypeReg
	h.Size = 0
	h.Linkname = ""
	return &h
}

// DefaultWhiteouts probes whether this process can make 0/0 char devices and trusted.*
// xattrs in dir (both needed by the overlay form, and refused to non-root or by some file
// systems): WhiteoutOverlay if so, else WhiteoutOCI. The probe leaves dir as it found it.
func DefaultWhiteouts(dir string) WhiteoutFormat {
	probe, err := os.MkdirTemp(dir, ".whiteout-probe-")
	if err != nil {
		return WhiteoutOCI
	}
	defer os.RemoveAll(probe)
	if err := unix.Mknod(filepath.Join(probe, "c"), unix.S_IFCHR, 0); err != nil {
		return WhiteoutOCI
	}
	if err := unix.Setxattr(probe, OpaqueXattr, []byte("y"), 0); err != nil {
		return WhiteoutOCI
	}
	return WhiteoutOverlay
}

func isNotExist(err error) bool { return errors.Is(err, unix.ENOENT) }
