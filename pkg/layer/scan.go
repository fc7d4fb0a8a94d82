package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
)

// Scan hands on the uncompressed tar of a layer blob, unchanged, for a consumer that unpacks
// it elsewhere (cvmfs_server ingest), and describes it as Extract would have: the Meta the
// flattener needs (hard links to earlier layers, implicit directories; whiteouts kept as OCI
// marker files, as the tar has them; the Tally of what Extract would write, where that is
// certain). It checks what Extract checks of the stream — the compressed digest and size,
// the diff_id, ".." or NUL in names, the size and entry limits — and a failed check ends the returned reader with the error instead of io.EOF, so a
// consumer never sees a clean end of a bad layer: the last HoldBack bytes (the tar's end
// blocks and padding) are handed on only once every check has passed, so a consumer that
// stops at the end-of-archive blocks does not see them early either. Nothing is written
// anywhere.
//
// The consumer reads tar to its end (or closes it to give up); done then returns the Meta.
func Scan(ctx context.Context, blob io.Reader, want Want, opts Options) (tar io.ReadCloser, done func() (*Meta, error)) {
	pr, pw := io.Pipe()
	var meta *Meta
	var err error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		held := &holdBack{w: pw}
		meta, err = scan(ctx, blob, want, opts, held)
		if err == nil {
			err = held.flush()
		}
		pw.CloseWithError(err) // nil: io.EOF
	}()
	return pr, func() (*Meta, error) {
		<-finished
		return meta, err
	}
}

func scan(ctx context.Context, blob io.Reader, want Want, opts Options, out io.Writer) (*Meta, error) {
	if want.Size <= 0 {
		return nil, fmt.Errorf("layer %s: %w: the manifest's descriptor gives size %d, but no compressed layer is empty: the manifest is wrong",
			want.Digest, ErrMalformed, want.Size)
	}
	blobD, err := newDigester(want.Digest)
	if err == nil && want.Digest == "" {
		err = errors.New("no layer digest given")
	}
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", want.Digest, err)
	}
	diffD, err := newDigester(want.DiffID)
	if err != nil {
		return nil, fmt.Errorf("layer %s: diff_id: %w", want.Digest, err)
	}
	lim := newLimits(opts)
	compressed := io.TeeReader(ContextReader(ctx, io.LimitReader(blob, want.Size+1)), blobD)
	dec, compression, err := Decompress(compressed, lim.zstdWindow)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w: %w", want.Digest, ErrMalformed, err)
	}
	defer dec.Close()
	var bounded io.Reader = dec
	if lim.bytes >= 0 {
		bounded = io.LimitReader(dec, lim.bytes+1)
	}
	raw := io.TeeReader(bounded, diffD)
	passed := io.TeeReader(raw, out)
	m := &Meta{Digest: want.Digest, DiffID: want.DiffID, Compression: compression, Whiteouts: WhiteoutOCI}
	seen := map[string]bool{"": true}
	parents := map[string]bool{}
	tally := newTallier()
	tr := tar.NewReader(passed)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrClosedPipe) || ctx.Err() != nil {
				return nil, errors.Join(err, ctx.Err())
			}
			return nil, fmt.Errorf("layer %s: %w: reading the tar stream: %w", want.Digest, ErrMalformed, err)
		}
		m.Entries++
		if over(int64(m.Entries), lim.entries) {
			return nil, fmt.Errorf("layer %s: %w: more than %d entries", want.Digest, ErrLimit, lim.entries)
		}
		name, err := cleanName(h.Name)
		if err != nil {
			return nil, fmt.Errorf("layer %s: entry %q: %w", want.Digest, h.Name, err)
		}
		if h.Typeflag == tar.TypeLink {
			target, err := cleanName(h.Linkname)
			if err != nil {
				return nil, fmt.Errorf("layer %s: hard link %q: %w", want.Digest, h.Name, err)
			}
			if !seen[target] {
				m.Links = append(m.Links, Link{Path: name, Target: target})
			}
		}
		tally.add(h, name)
		seen[name] = true
		for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
			parents[dir] = true
		}
	}
	if _, err := io.Copy(io.Discard, passed); err != nil { // the tar's end padding goes on too
		return nil, errors.Join(err, ctx.Err())
	}
	if _, err := io.Copy(io.Discard, compressed); err != nil {
		return nil, errors.Join(err, ctx.Err())
	}
	if blobD.n > want.Size {
		return nil, fmt.Errorf("layer %s: %w: the blob is longer than the %d bytes its descriptor gives", want.Digest, ErrMalformed, want.Size)
	}
	if err := blobD.check(want.Digest); err != nil {
		return nil, err
	}
	if blobD.n < want.Size {
		return nil, fmt.Errorf("layer %s: %w: the blob is %d bytes, its descriptor gives %d", want.Digest, ErrMalformed, blobD.n, want.Size)
	}
	if over(diffD.n, lim.bytes) {
		return nil, fmt.Errorf("layer %s: %w: more than %d uncompressed bytes", want.Digest, ErrLimit, lim.bytes)
	}
	if want.DiffID != "" && diffD.digest() != want.DiffID {
		return nil, fmt.Errorf("layer %s: %w: its tar stream hashes to %s, the image config says %s", want.Digest, ErrMalformed, diffD.digest(), want.DiffID)
	}
	for dir := range parents {
		if !seen[dir] {
			m.ImplicitDirs = append(m.ImplicitDirs, dir)
		}
	}
	slices.Sort(m.ImplicitDirs)
	m.Size, m.UncompressedSize = blobD.n, diffD.n
	m.Tally = tally.tally() // nil where what the unpacker writes is not certain (scantally.go)
	return m, nil
}

// HoldBack is how many bytes of the tar Scan keeps back until the layer has passed its
// checks: more than a tar's end-of-archive blocks and the padding of GNU tar's 10 KiB records.
const HoldBack = 64 << 10

// holdBack passes on what is written to it HoldBack bytes late; flush passes on the rest.
type holdBack struct {
	w   io.Writer
	buf bytes.Buffer
}

func (h *holdBack) Write(p []byte) (int, error) {
	h.buf.Write(p)
	if over := h.buf.Len() - HoldBack; over > 0 {
		if _, err := h.w.Write(h.buf.Next(over)); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (h *holdBack) flush() error {
	_, err := h.w.Write(h.buf.Next(h.buf.Len()))
	return err
}
