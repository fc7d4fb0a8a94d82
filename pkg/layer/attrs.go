package layer

import (
	"archive/tar"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// perm is the permission part of a tar mode, including setuid, setgid and sticky.
func perm(hdr *tar.Header) uint32 { return uint32(hdr.Mode) & 0o7777 }

// times returns {atime, mtime}; tars without an access time get the modification time.
func times(hdr *tar.Header) []unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return []unix.Timespec{timespec(at), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{}
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// setTimesAt sets atime and mtime on base itself, also when it is a symlink.
func setTimesAt(pfd int, base string, hdr *tar.Header) error {
	if err := unix.UtimesNanoAt(pfd, base, times(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// chownAt sets the owner of base (not of a symlink's target). Only root can give files away;
// otherwise files keep the extracting user as owner.
func (x *extractor) chownAt(pfd int, base string, uid, gid int) error {
	if !x.isRoot {
		return nil
	}
	if err := unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("changing owner to %d:%d: %w", uid, gid, err)
	}
	return nil
}

const paxXattr = "SCHILY.xattr."

// overlayXattrs is the namespace overlayfs interprets in its layers.
const overlayXattrs = "trusted.overlay."

func (x *extractor) skipXattr(rel, name string) {
	if len(x.meta.Skipped) < skippedRecord {
		x.meta.Skipped = append(x.meta.Skipped, rel+": xattr "+name+" dropped (overlayfs would act on it)")
	} else {
		x.meta.SkippedMore++
	}
	x.log.Warn("xattr not kept", "path", rel, "xattr", name, "reason", "overlayfs namespace")
}

// xattrs returns the extended attributes a PAX header carries, in a stable order.
func xattrs(hdr *tar.Header) []string {
	var keys []string
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr) && len(k) > len(paxXattr) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// setXattrs applies a header's xattrs with set (an fd or a path variant). Best effort:
// the file system or our privileges may refuse some namespaces (trusted.*, security.*),
// and an image should still unpack; each refusal is logged.
func (x *extractor) setXattrs(rel string, hdr *tar.Header, set func(name string, value []byte) error) {
	for _, k := range xattrs(hdr) {
		name := strings.TrimPrefix(k, paxXattr)
		if strings.HasPrefix(name, overlayXattrs) {
			// opaque, redirect, metacopy, origin…: overlayfs would act on them, so only
			// this package's own whiteout handling may set them.
			x.skipXattr(rel, name)
			continue
		}
		if err := set(name, []byte(hdr.PAXRecords[k])); err != nil {
			x.log.Warn("xattr not kept", "path", rel, "xattr", name, "err", err)
		}
	}
}

// setXattrsAt sets xattrs on base below pfd without following it, for entries we hold no
// fd of (symlinks, device nodes). There is no lsetxattrat, so the name goes through the
// /proc magic link of the already verified parent fd.
func (x *extractor) setXattrsAt(pfd int, base, rel string, hdr *tar.Header) {
	if len(hdr.PAXRecords) == 0 {
		return
	}
	p := fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base)
	x.setXattrs(rel, hdr, func(name string, value []byte) error { return unix.Lsetxattr(p, name, value, 0) })
}

// setXattrsFd sets xattrs through an open fd of a regular file or directory.
func (x *extractor) setXattrsFd(fd int, rel string, hdr *tar.Header) {
	if len(hdr.PAXRecords) == 0 {
		return
	}
	x.setXattrs(rel, hdr, func(name string, value []byte) error { return unix.Fsetxattr(fd, name, value, 0) })
}
