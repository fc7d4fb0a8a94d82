package layer

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Options tune Extract.
type Options struct {
	// Whiteouts is the form deletions are kept in. Empty means DefaultWhiteouts(dir).
	Whiteouts WhiteoutFormat
	// Logger receives skipped entries and refused xattrs; nil discards.
	Logger *slog.Logger

	// Limits against hostile layers; exceeding one fails the layer with ErrLimit. Zero
	// means the Default* constant, a negative value means no limit.

	// MaxUncompressedBytes bounds the uncompressed tar stream as it is read (a
	// decompression bomb stops there) and, separately, the sum of the sizes of the files
	// written, sparse files counted at their full logical size (checked before a file is
	// created). The compressed blob may be at most 1/64 + 1 MiB larger. The CLI sets it
	// with --max-layer-bytes.
	MaxUncompressedBytes int64
	// MaxEntries bounds the number of tar entries.
	MaxEntries int
	// MaxPathBytes bounds the length of an entry's cleaned path (also of a hard-link target).
	MaxPathBytes int
	// MaxPathDepth bounds the number of components of an entry's cleaned path.
	MaxPathDepth int
	// MaxZstdWindowBytes bounds the window a zstd frame may declare, which is the memory
	// the decoder holds (values under 1 KiB, zstd's smallest window, count as 1 KiB).
	MaxZstdWindowBytes int64
}

// Want is what the manifest promises about the layer.
type Want struct {
	Digest    string // compressed blob digest, "sha256:<hex>"; required
	DiffID    string // uncompressed tar digest from the image config; "" = not checked
	MediaType string // only used in messages: the format is detected from the bytes
	// Size is the blob size from the descriptor; required (> 0: no compressed layer is
	// empty, and 0 is what a descriptor without a size decodes to). Exactly Size bytes are
	// read: one more fails at once, so an endless or oversized stream cannot run on, and
	// a blob that ends short fails at its end.
	Size int64
}

// typeRegA is the pre-POSIX regular file flag (tar.TypeRegA, deprecated by name only:
// archive/tar already maps it to TypeReg when reading, this is belt and braces).
const typeRegA = '\x00'

// extractor is the state of one Extract call.
type extractor struct {
	root   int // fd of the layerfs directory, the only base of every path operation
	format WhiteoutFormat
	isRoot bool
	log    *slog.Logger
	meta   *Meta
	lim    limits
	files  int64 // sum of the sizes of the regular files written, sparse ones expanded

	dirs         map[string]dirAttrs // directory metadata applied at the end
	whiteouts    map[string]struct{} // overlay whiteout devices made by this layer
	linkPaths    map[string]struct{} // paths recorded in meta.Links
	implicit     map[string]struct{} // parents made without an entry of their own
	dropped      map[string]struct{} // paths of entries not kept, for meta.Dropped
	droppedBytes int                 // their lengths summed, bounded by droppedBytesMax
	badTar       bool                // the tar stream itself was malformed
}

// Extract reads the compressed blob r (gzip, zstd or plain tar, detected by magic bytes),
// unpacks it into dir (which exists and is empty) and, once the stream has ended, verifies
// the compressed digest and the diffID. It streams: memory use does not grow with the layer.
// On any error the caller discards dir; Extract never writes outside dir.
func Extract(ctx context.Context, r io.Reader, dir string, want Want, opts Options) (*Meta, error) {
	blob, err := newDigester(want.Digest)
	if err == nil && want.Digest == "" {
		err = errors.New("no layer digest given")
	}
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", want.Digest, err)
	}
	diff, err := newDigester(want.DiffID)
	if err != nil {
		return nil, fmt.Errorf("layer %s: diff_id: %w", want.Digest, err)
	}
	if want.Size <= 0 {
		return nil, fmt.Errorf("layer %s: %w: the manifest's descriptor gives size %d, but no compressed layer is empty: the manifest is wrong",
			want.Digest, ErrMalformed, want.Size)
	}
	format := opts.Whiteouts
	if format == "" {
		format = DefaultWhiteouts(dir)
	}
	if format != WhiteoutOverlay && format != WhiteoutOCI {
		return nil, fmt.Errorf("layer %s: unknown whiteout format %q", want.Digest, format)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("layer", want.Digest)

	rootFd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("layer %s: opening %s: %w", want.Digest, dir, err)
	}
	defer unix.Close(rootFd)

	r = &limitReader{r: r, max: want.Size, err: fmt.Errorf("the blob is longer than the %d bytes its descriptor gives", want.Size)}
	lim := newLimits(opts)
	blobMax := int64(-1)
	if lim.bytes >= 0 {
		// Compression never grows data by more than a few bytes per 64 KiB block.
		blobMax = lim.bytes + lim.bytes/64 + 1<<20
	}
	r = &limitReader{r: r, max: blobMax, err: bytesLimitError("the compressed blob is", blobMax)}
	br := bufio.NewReaderSize(io.TeeReader(ctxReader{ctx, r}, blob), 64<<10)
	dr, kind, err := decompress(br, lim.zstdWindow)
	if err != nil {
		return nil, fmt.Errorf("layer %s (%s): reading %s stream: %w", want.Digest, mediaType(want), kind, err)
	}
	defer dr.Close()
	tarStream := &errReader{r: io.TeeReader(&limitReader{r: dr, max: lim.bytes, err: bytesLimitError("the uncompressed tar stream is", lim.bytes)}, diff)}

	x := &extractor{
		root:      rootFd,
		format:    format,
		isRoot:    os.Geteuid() == 0,
		log:       log,
		meta:      &Meta{Digest: want.Digest, Compression: kind, Whiteouts: format},
		lim:       lim,
		dirs:      map[string]dirAttrs{},
		whiteouts: map[string]struct{}{},
		linkPaths: map[string]struct{}{},
		implicit:  map[string]struct{}{},
		dropped:   map[string]struct{}{},
	}
	if err := x.run(ctx, tar.NewReader(tarStream)); err != nil {
		err = fmt.Errorf("layer %s (%s, %s): %w", want.Digest, mediaType(want), kind, err)
		if (tarStream.err != nil || x.badTar) && ctx.Err() == nil && !permanent(err) {
			// A corrupt stream is most often a corrupt download: say so if the digest
			// disagrees, and call it malformed (permanent) if the digest agrees.
			dr.Close()
			if _, derr := io.Copy(io.Discard, br); derr == nil {
				if cerr := blob.check(want.Digest); cerr != nil {
					return nil, fmt.Errorf("%w (%v)", cerr, err)
				}
				return nil, malformed(err)
			}
		}
		return nil, err
	}
	// The tar end marker may be followed by padding (and a compressed stream by more
	// frames or bytes): both digests cover every byte, so read to the very end.
	if _, err := io.Copy(io.Discard, tarStream); err != nil {
		err = fmt.Errorf("layer %s (%s, %s): reading after the tar end: %w", want.Digest, mediaType(want), kind, err)
		if !permanent(err) && ctx.Err() == nil {
			if _, derr := io.Copy(io.Discard, br); derr == nil {
				if cerr := blob.check(want.Digest); cerr != nil {
					return nil, fmt.Errorf("%w (%v)", cerr, err)
				}
				return nil, malformed(err)
			}
		}
		return nil, err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("layer %s: reading the rest of the blob: %w", want.Digest, err)
	}
	if err := blob.check(want.Digest); err != nil {
		if blob.n < want.Size {
			return nil, fmt.Errorf("%w (the blob ended after %d of the %d bytes its descriptor gives)", err, blob.n, want.Size)
		}
		return nil, err
	}
	if blob.n < want.Size { // never more: the limitReader stops at Size
		return nil, fmt.Errorf("layer %s: %w: the blob matches its digest but is %d bytes, while the manifest's descriptor gives %d: the manifest is wrong",
			want.Digest, ErrMalformed, blob.n, want.Size)
	}
	if got := diff.digest(); want.DiffID != "" && got != want.DiffID {
		// The bytes are exactly the published blob: the config contradicts its own layer.
		return nil, fmt.Errorf("layer %s: diff_id mismatch: the image config expects %s, the layer's tar stream is %s: %w: the blob matches its digest, so the image is inconsistent and a retry cannot help",
			want.Digest, want.DiffID, got, ErrMalformed)
	}
	x.meta.ImplicitDirs = sortedKeys(x.implicit)
	x.meta.Dropped = sortedKeys(x.dropped)
	if err := x.finishDirs(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", want.Digest, err)
	}
	x.meta.DiffID = diff.digest()
	x.meta.Size = blob.n
	x.meta.UncompressedSize = diff.n
	t, err := Count(dir)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", want.Digest, err)
	}
	x.meta.Tally = &t
	return x.meta, nil
}

// malformed marks err, from a tar stream whose blob matches its digest, as permanent.
func malformed(err error) error {
	return fmt.Errorf("%w (%w: the blob matches its digest, so a retry cannot help)", err, ErrMalformed)
}

func mediaType(want Want) string {
	if want.MediaType == "" {
		return "no media type"
	}
	return want.MediaType
}

// run unpacks entries until the tar end, checking ctx between entries.
func (x *extractor) run(ctx context.Context, tr *tar.Reader) error {
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			x.badTar = true
			where := "at the first entry"
			if last != "" {
				where = "after entry " + shortName(last)
			}
			return fmt.Errorf("reading tar %s: %w", where, classifyTarError(err))
		}
		last = hdr.Name
		x.meta.Entries++
		if over(int64(x.meta.Entries), x.lim.entries) {
			return fmt.Errorf("at entry %s: %w: more than %d entries (raise it with Options.MaxEntries)", shortName(hdr.Name), ErrLimit, x.lim.entries)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("extracting %s: %w", shortName(hdr.Name), err)
		}
	}
}

// entry unpacks one tar entry; data is the entry's content.
func (x *extractor) entry(hdr *tar.Header, data io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	rel, err := x.cleanPath(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			x.skip(shortName(hdr.Name), "names the layer root but is not a directory")
		}
		return nil // "./": the root's metadata belongs to whoever made dir
	}
	if aufsMeta(rel) {
		x.skip(rel, "aufs metadata")
		return nil
	}
	x.undrop(rel)
	dirRel, base := splitRel(rel)
	if strings.HasPrefix(base, whPrefix) {
		if x.format == WhiteoutOverlay {
			return x.overlayWhiteout(hdr, dirRel, base, rel)
		}
		hdr, data = ociWhiteout(hdr), strings.NewReader("")
	}

	pfd, err := x.openDir(dirRel, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	x.forgetLink(rel)
	switch hdr.Typeflag {
	case tar.TypeReg, typeRegA, tar.TypeCont, tar.TypeGNUSparse:
		return x.regular(hdr, data, pfd, base, rel)
	case tar.TypeDir:
		return x.dir(hdr, pfd, base, rel)
	case tar.TypeSymlink:
		return x.symlink(hdr, pfd, base, rel)
	case tar.TypeLink:
		return x.hardlink(hdr, pfd, base, rel)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return x.node(hdr, pfd, base, rel)
	}
	x.skip(rel, fmt.Sprintf("unsupported tar type %q", hdr.Typeflag))
	return nil
}

// cleanPath is cleanName followed by the path limits.
func (x *extractor) cleanPath(name string) (string, error) {
	rel, err := cleanName(name)
	if err != nil {
		return "", err
	}
	if err := x.lim.checkPath(rel); err != nil {
		return "", err
	}
	return rel, nil
}

// skip records an entry that is not kept. Past skippedRecord records only the count grows,
// so a hostile layer of millions of skipped entries cannot bloat Meta.
func (x *extractor) skip(rel, reason string) {
	if len(x.meta.Skipped) < skippedRecord {
		x.meta.Skipped = append(x.meta.Skipped, rel+": "+reason)
	} else {
		x.meta.SkippedMore++
	}
	x.log.Debug("entry skipped", "path", rel, "reason", reason)
}

func sortedKeys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
