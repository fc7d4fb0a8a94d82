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
}

// Want is what the manifest promises about the layer.
type Want struct {
	Digest    string // compressed blob digest, "sha256:<hex>"; required
	DiffID    string // uncompressed tar digest from the image config; "" = not checked
	MediaType string // only used in messages: the format is detected from the bytes
	// Size is the blob size from the descriptor; 0 = not checked. When set, reading stops
	// after Size+1 bytes, so an endless or oversized stream cannot run on.
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

	dirs      map[string]dirAttrs // directory metadata applied at the end
	whiteouts map[string]struct{} // overlay whiteout devices made by this layer
	linkPaths map[string]struct{} // paths recorded in meta.Links
	implicit  map[string]struct{} // parents made without an entry of their own
	badTar    bool                // the tar stream itself was malformed
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

	if want.Size > 0 {
		r = io.LimitReader(r, want.Size+1)
	}
	br := bufio.NewReaderSize(io.TeeReader(ctxReader{ctx, r}, blob), 64<<10)
	dr, kind, err := decompress(br)
	if err != nil {
		return nil, fmt.Errorf("layer %s (%s): reading %s stream: %w", want.Digest, mediaType(want), kind, err)
	}
	defer dr.Close()
	tarStream := &errReader{r: io.TeeReader(dr, diff)}

	x := &extractor{
		root:      rootFd,
		format:    format,
		isRoot:    os.Geteuid() == 0,
		log:       log,
		meta:      &Meta{Digest: want.Digest, Compression: kind, Whiteouts: format},
		dirs:      map[string]dirAttrs{},
		whiteouts: map[string]struct{}{},
		linkPaths: map[string]struct{}{},
		implicit:  map[string]struct{}{},
	}
	if err := x.run(ctx, tar.NewReader(tarStream)); err != nil {
		err = fmt.Errorf("layer %s (%s, %s): %w", want.Digest, mediaType(want), kind, err)
		if (tarStream.err != nil || x.badTar) && ctx.Err() == nil {
			// A corrupt stream is most often a corrupt download: say so if the digest agrees.
			dr.Close()
			if _, derr := io.Copy(io.Discard, br); derr == nil {
				if cerr := blob.check(want.Digest, "compressed digest", want.Digest); cerr != nil {
					return nil, fmt.Errorf("%w (%v)", cerr, err)
				}
			}
		}
		return nil, err
	}
	// The tar end marker may be followed by padding (and a compressed stream by more
	// frames or bytes): both digests cover every byte, so read to the very end.
	if _, err := io.Copy(io.Discard, tarStream); err != nil {
		return nil, fmt.Errorf("layer %s (%s, %s): reading after the tar end: %w", want.Digest, mediaType(want), kind, err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("layer %s: reading the rest of the blob: %w", want.Digest, err)
	}
	if want.Size > 0 && blob.n != want.Size {
		got := fmt.Sprint(blob.n)
		if blob.n > want.Size {
			got = "more" // reading stopped at Size+1
		}
		return nil, fmt.Errorf("layer %s: size mismatch: expected %d bytes, got %s", want.Digest, want.Size, got)
	}
	if err := blob.check(want.Digest, "compressed digest", want.Digest); err != nil {
		return nil, err
	}
	if err := diff.check(want.Digest, "diff_id", want.DiffID); err != nil {
		return nil, err
	}
	x.meta.ImplicitDirs = sortedKeys(x.implicit)
	if err := x.finishDirs(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", want.Digest, err)
	}
	x.meta.DiffID = diff.digest()
	x.meta.Size = blob.n
	x.meta.UncompressedSize = diff.n
	return x.meta, nil
}

func mediaType(want Want) string {
	if want.MediaType == "" {
		return "no media type"
	}
	return want.MediaType
}

// run unpacks entries until the tar end, checking ctx between entries.
func (x *extractor) run(ctx context.Context, tr *tar.Reader) error {
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
			return fmt.Errorf("reading tar: %w", err)
		}
		x.meta.Entries++
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("extracting %q: %w", hdr.Name, err)
		}
	}
}

// entry unpacks one tar entry; data is the entry's content.
func (x *extractor) entry(hdr *tar.Header, data io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		return nil // "./": the root's metadata belongs to whoever made dir
	}
	if aufsMeta(rel) {
		x.skip(rel, "aufs metadata")
		return nil
	}
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

// skip records an entry that is not kept.
func (x *extractor) skip(rel, reason string) {
	x.meta.Skipped = append(x.meta.Skipped, rel+": "+reason)
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
