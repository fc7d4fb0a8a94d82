package layer

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// zstdWindowMax is the largest window the zstd decoder accepts at all (~3.75 TB); it stands
// for "no limit" (Options.MaxZstdWindowBytes < 0).
const zstdWindowMax = 1<<41 + 7<<38

// frameHeaderMax is the longest zstd frame header: magic, descriptor, window descriptor,
// dictionary ID and content size.
const frameHeaderMax = 4 + 1 + 1 + 4 + 8

// zstdReader decodes a zstd stream holding at most maxWindow bytes of history. The decoder
// allocates the window a frame declares, whatever the frame really holds: without a bound a
// tiny blob declaring a 512 MiB window costs 0.5 to 2 GB of memory.
type zstdReader struct {
	d     *zstd.Decoder
	tail  *tailReader
	limit uint64 // the window bound in effect
}

func newZstdReader(r io.Reader, maxWindow int64) (*zstdReader, error) {
	win := uint64(zstdWindowMax)
	if maxWindow >= 0 {
		win = min(max(uint64(maxWindow), zstd.MinWindowSize), zstdWindowMax)
	}
	tail := &tailReader{r: r}
	// One goroutine: reads stay synchronous, so draining the blob after an error cannot race
	// with read-ahead, and the frame header is the last thing read when a window is refused.
	// MaxMemory is the window bound of a single-segment frame (its content size).
	d, err := zstd.NewReader(tail, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(win), zstd.WithDecoderMaxMemory(win))
	if err != nil {
		return nil, err
	}
	return &zstdReader{d: d, tail: tail, limit: win}, nil
}

func (z *zstdReader) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		err = z.windowError()
	}
	return n, err
}

func (z *zstdReader) Close() error {
	z.d.Close()
	return nil
}

// windowError says which window the refused frame declared, read back from its header.
func (z *zstdReader) windowError() error {
	declared := "a window"
	if h, ok := z.tail.frameHeader(); ok {
		w := h.WindowSize
		if h.SingleSegment {
			w = h.FrameContentSize // the whole frame is the window
		}
		declared = fmt.Sprintf("a window of %s", byteSize(w))
	}
	return fmt.Errorf("%w: a zstd frame declares %s, more than the limit of %s (decoding needs that much memory; raise it with Options.MaxZstdWindowBytes)",
		ErrLimit, declared, byteSize(z.limit))
}

// tailReader remembers the last bytes read through it. The synchronous zstd decoder reads a
// frame header with exact reads and checks the window right after, so when it refuses one the
// header is what was read last.
type tailReader struct {
	r    io.Reader
	tail [frameHeaderMax]byte
	n    int
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	b := p[:n]
	if len(b) >= len(t.tail) {
		t.n = copy(t.tail[:], b[len(b)-len(t.tail):])
		return n, err
	}
	keep := min(t.n, len(t.tail)-len(b))
	copy(t.tail[:], t.tail[t.n-keep:t.n])
	t.n = keep + copy(t.tail[keep:], b)
	return n, err
}

// frameHeader finds the frame header that ends exactly where reading stopped.
func (t *tailReader) frameHeader() (zstd.Header, bool) {
	b := t.tail[:t.n]
	for i := bytes.LastIndex(b, magicZstd); i >= 0; i = bytes.LastIndex(b[:i], magicZstd) {
		var h zstd.Header
		if h.Decode(b[i:]) == nil && h.HeaderSize == len(b)-i {
			return h, true
		}
	}
	return zstd.Header{}, false
}

// byteSize prints n in MiB when it is a whole number of them, else in bytes.
func byteSize(n uint64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
