// Package layer unpacks one image layer blob into a layerfs directory, safely and verified,
// in the form the store keeps it (overlayfs whiteouts when possible, OCI .wh. files otherwise).
//
// # Safety by construction
//
// Extract opens the layerfs directory once and makes every change relative to that fd,
// resolving parents through pkg/beneath (openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS), or where the kernel lacks it each component opened
// O_NOFOLLOW|O_DIRECTORY from its parent's fd, with the same answers) and *at calls that do
// not follow the last component (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, O_EXCL creates, unlink
// before replace). Whatever a layer has created before, the kernel refuses to leave the
// directory or to follow a symlink on the way, so no entry can write, link, chmod, chown or
// remove anything outside it. The policy below says what happens to each kind of hostile
// entry; "fails" means Extract returns an error wrapping the sentinel named, naming the layer
// digest and the entry, and the caller discards the directory (nothing of the layer is
// published; other layers and images are not affected).
//
// # Policy per case
//
//   - Names with a ".." component ("../../etc/x", "a/../../b", also "a/../b" and a PAX path
//     or GNU.sparse.name with an embedded "/../"): fail, ErrUnsafe. Like GNU tar and bsdtar,
//     such members are refused rather than guessed at.
//   - Absolute names ("/etc/x"): sanitised, the leading "/" is stripped (every tar tool does
//     this), so they land inside the layer: "/etc/x" becomes layerfs/etc/x. Empty and "."
//     components and repeated or trailing "/" are cleaned the same way.
//   - A name that is the root itself ("/", "./"): a directory entry is ignored (the root's
//     metadata is the store's); any other type is skipped and recorded in Meta.Skipped.
//   - NUL in a name: archive/tar refuses a PAX path or linkpath holding a NUL (and cuts
//     USTAR and GNU names at the first NUL), so such a layer fails as ErrMalformed (the
//     tar is unreadable although the blob matches its digest); a NUL reaching Extract some
//     other way fails as ErrUnsafe.
//   - Writing "through" a symlink (a file, directory, hard link or whiteout below a path
//     component that is a symlink, wherever that symlink points, including symlink loops
//     "a -> b, b -> a" followed by "a/x", and a directory replaced by a symlink and then
//     written into): fail, ErrUnsafe ("parent X is a symlink (not followed)"). Image build
//     tools never produce this; Docker would follow the link inside its chroot, which is
//     the one case where flatbed is stricter.
//   - Symlinks themselves: kept verbatim, whatever they point at (absolute, dangling,
//     "../../.."): they are data, never followed while unpacking. Empty targets are skipped
//     and recorded; targets over 4095 bytes (PATH_MAX) fail, ErrLimit.
//   - An entry replacing a symlink (a file or a directory of the same name): the symlink is
//     removed first and the entry made in its place, never through it.
//   - Hard links: the target is cleaned like a name, so "../outside" fails (ErrUnsafe) and
//     an absolute target ("/etc/passwd") means that path inside the image. A target this
//     layer holds is linked (the target itself, even a symlink); a target it does not hold
//     is recorded in Meta.Links for the flattener, which resolves it inside the flat tree
//     of the image only. Links to a directory or to the root fail, ErrUnsafe.
//   - Device nodes and fifos: fifos are kept (they reach nothing). Of character devices only
//     the harmless pseudo-devices null, zero, full, random, urandom and tty are kept, and only
//     when the process may make device nodes (root; this is also when the overlay whiteout
//     form is used); all block devices and every other character device (including 0/0,
//     which overlayfs would take for a whiteout) are skipped and recorded in Meta.Skipped,
//     as the store is read on other hosts where such a node would open the raw device.
//     In the image such a node still replaces what the lower layers have at its path, so
//     its path is also listed in Meta.Dropped and the flattener removes the lower entry
//     there, as for a whiteout; what this layer put there before goes at once, and a hard
//     link to a dropped node is dropped too. The listed paths may add up to 16 MiB
//     (fixed), more fails with ErrLimit.
//   - xattrs from PAX SCHILY.xattr records are applied best effort, except the
//     trusted.overlay.* namespace (opaque, redirect, metacopy…), which only this package's
//     own whiteout handling sets: those are dropped and recorded in Meta.Skipped.
//   - AUFS bookkeeping (.wh..wh.plnk etc.): skipped and recorded, as Docker does.
//   - Path limits: a cleaned path longer than Options.MaxPathBytes (default 3840 bytes) or
//     deeper than Options.MaxPathDepth (default 1024 components), e.g. a 10,000-deep path,
//     fails with ErrLimit rather than an opaque ENAMETOOLONG; so does a component over 255
//     bytes (NAME_MAX, fixed).
//   - Huge PAX or GNU long-name headers: archive/tar refuses any over 1 MiB; the layer fails
//     with ErrLimit (fixed, not configurable).
//   - Blob size: Want.Size, the descriptor's size, is required: 0 (what a descriptor
//     without a size decodes to) or less fails, ErrMalformed, before anything is read, as
//     no compressed layer is empty and the bound would be lost. The blob is read to exactly
//     that size: one byte more fails at once (an endless stream stops there; retryable, as
//     it cannot be told from a bad download without reading on), and one that ends short
//     fails at its end, with ErrDigestMismatch if the bytes read do not match the digest
//     and ErrMalformed (the manifest is wrong) if they do.
//   - Decompression bombs: the uncompressed tar stream is counted as it streams and reading
//     stops with ErrLimit once it exceeds Options.MaxUncompressedBytes (default 64 GiB; the
//     CLI flag is --max-layer-bytes); the compressed blob may be at most 1/64 + 1 MiB more.
//   - zstd windows: a zstd frame declares the window of history its decoder keeps in memory
//     (up to 512 MiB from common encoders, terabytes by the format), whatever the blob
//     holds: a few bytes can claim 512 MiB. A frame declaring more than
//     Options.MaxZstdWindowBytes (default 128 MiB, the reference decoder's own default)
//     fails at its header, before that memory is taken, with ErrLimit naming the declared
//     window and the limit. The decoder runs on one goroutine in its low-memory mode.
//   - Sparse files: archive/tar expands them, so a file is counted at its logical size,
//     before it is created, against the same MaxUncompressedBytes (the sum of all files of
//     the layer): a sparse file of 1 TiB fails at once instead of filling the disk.
//   - Entry count: more than Options.MaxEntries entries (default 5,000,000) fails, ErrLimit.
//   - A tar that archive/tar cannot read: if the blob does not match its digest the error
//     wraps ErrDigestMismatch (a bad download, worth a retry), otherwise ErrMalformed.
//   - A blob that matches its digest but whose tar stream does not match the config's
//     diff_id: ErrMalformed (the image is inconsistent; the download was fine).
//
// ErrUnsafe, ErrLimit and ErrMalformed are permanent (the same blob fails the same way
// every time); only ErrDigestMismatch and I/O errors are worth retrying.
package layer
