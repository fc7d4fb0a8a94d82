package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The sentinel errors below are wrapped by Extract's error (test with errors.Is). All three
// are permanent: the same blob fails the same way on every attempt, so callers should fail
// the image at once instead of retrying. ErrDigestMismatch, in contrast, may be a bad
// download and is worth a retry.
var (
	// ErrUnsafe: an entry tries to leave the layer root or to write through a symlink
	// ("../" in a name or hard-link target, a file below a symlink, a symlink loop on the
	// way to a file). Nothing of it was written; see the package documentation.
	ErrUnsafe = errors.New("unsafe layer entry")
	// ErrLimit: the layer exceeds a limit of Options (uncompressed bytes, entries, path
	// length or depth, zstd window) or a fixed one (name component, symlink target, tar header size).
	// The message names the limit and how to raise it where it can be raised.
	ErrLimit = errors.New("layer limit exceeded")
	// ErrMalformed: the blob matches its digest, so it is exactly what was published, yet it
	// is not a readable tar (or compressed tar) stream, or it contradicts the image config
	// (its tar stream does not hash to the config's diff_id).
	ErrMalformed = errors.New("malformed layer")
)

// Defaults used for the zero value of the corresponding Options field.
const (
	// DefaultMaxUncompressedBytes (64 GiB) bounds the uncompressed tar stream and, separately,
	// the sum of the sizes of the files written (sparse files at their full logical size).
	// The largest layers of real images (CUDA, ML frameworks) are around 20 GiB.
	DefaultMaxUncompressedBytes int64 = 64 << 30
	// DefaultMaxEntries bounds the number of tar entries of one layer (big distribution
	// images hold a few hundred thousand).
	DefaultMaxEntries = 5_000_000
	// DefaultMaxPathBytes bounds the length of an entry's cleaned path: PATH_MAX (4096, with
	// its NUL) less room for the store prefix (/cvmfs/<repo>/.flat/xx/<64 hex>/), so every
	// file stays reachable by an absolute path on the clients.
	DefaultMaxPathBytes = 3840
	// DefaultMaxPathDepth bounds the number of components of an entry's path.
	DefaultMaxPathDepth = 1024
	// DefaultMaxZstdWindowBytes (128 MiB) bounds the window of a zstd frame, i.e. the memory
	// of its decoder. It is the reference decoder's own default (zstd -d refuses larger
	// windows without --memory): layers of `zstd --long` or --ultra -22 decode, bombs
	// declaring 512 MiB or more do not. Image tools write 8 MiB windows or less.
	DefaultMaxZstdWindowBytes int64 = 128 << 20
)

// Fixed limits: the kernel's, or archive/tar's; not configurable.
const (
	nameMax       = 255     // NAME_MAX: one path component
	symlinkMax    = 4095    // PATH_MAX less the NUL: a symlink target
	paxHeaderMax  = 1 << 20 // archive/tar's limit on one PAX or GNU long-name header
	skippedRecord = 1000    // Meta.Skipped entries kept; the rest are only counted
)

// limits are the effective Options limits of one Extract call; a value < 0 means none.
type limits struct {
	bytes, entries, pathBytes, pathDepth, zstdWindow int64
}

func newLimits(o Options) limits {
	pick := func(v, def int64) int64 {
		if v == 0 {
			return def
		}
		return v
	}
	return limits{
		bytes:      pick(o.MaxUncompressedBytes, DefaultMaxUncompressedBytes),
		entries:    pick(int64(o.MaxEntries), DefaultMaxEntries),
		pathBytes:  pick(int64(o.MaxPathBytes), DefaultMaxPathBytes),
		pathDepth:  pick(int64(o.MaxPathDepth), DefaultMaxPathDepth),
		zstdWindow: pick(o.MaxZstdWindowBytes, DefaultMaxZstdWindowBytes),
	}
}

// over reports whether n exceeds limit (a negative limit is no limit).
func over(n, limit int64) bool { return limit >= 0 && n > limit }

// bytesLimitError says what went over the byte limit and how to raise it.
func bytesLimitError(what string, limit int64) error {
	return fmt.Errorf("%w: %s more than %d bytes (the uncompressed size limit; raise it with --max-layer-bytes, Options.MaxUncompressedBytes)",
		ErrLimit, what, limit)
}

// limitReader returns err, instead of data, once more than max bytes have been read (a
// negative max is no limit): a decompression bomb stops after max bytes, not when the disk
// is full, and an endless blob after the size its descriptor gives.
type limitReader struct {
	r   io.Reader
	n   int64
	max int64
	err error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.max < 0 {
		n, err := l.r.Read(p)
		l.n += int64(n)
		return n, err
	}
	if l.n > l.max {
		return 0, l.err
	}
	if room := l.max - l.n + 1; int64(len(p)) > room {
		p = p[:room] // one byte more than allowed tells "exactly max" from "more"
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		return n - int(l.n-l.max), l.err
	}
	return n, err
}

// checkPath applies the path limits to a cleaned relative path.
func (lim limits) checkPath(rel string) error {
	if over(int64(len(rel)), lim.pathBytes) {
		return fmt.Errorf("%w: path is %d bytes, more than %d (raise it with Options.MaxPathBytes)", ErrLimit, len(rel), lim.pathBytes)
	}
	if depth := int64(strings.Count(rel, "/") + 1); over(depth, lim.pathDepth) {
		return fmt.Errorf("%w: path is %d components deep, more than %d (raise it with Options.MaxPathDepth)", ErrLimit, depth, lim.pathDepth)
	}
	for c := range strings.SplitSeq(rel, "/") {
		if len(c) > nameMax {
			return fmt.Errorf("%w: a path component is %d bytes, more than the file system's %d (NAME_MAX, fixed)", ErrLimit, len(c), nameMax)
		}
	}
	return nil
}

// classifyTarError marks archive/tar's refusal of an oversized PAX or GNU header as a limit.
func classifyTarError(err error) error {
	if errors.Is(err, tar.ErrFieldTooLong) {
		return fmt.Errorf("%w: a PAX or GNU long-name header is larger than archive/tar's fixed %d bytes: %w", ErrLimit, paxHeaderMax, err)
	}
	return err
}

// permanent reports whether err is one of the sentinels that need no digest check to explain.
func permanent(err error) bool {
	return errors.Is(err, ErrUnsafe) || errors.Is(err, ErrLimit) || errors.Is(err, ErrMalformed)
}

// shortName quotes a tar name for messages, shortening hostile kilobyte-long names.
func shortName(name string) string {
	const keep = 120
	if len(name) <= keep {
		return fmt.Sprintf("%q", name)
	}
	return fmt.Sprintf("%q…(%d bytes)", name[:keep], len(name))
}
