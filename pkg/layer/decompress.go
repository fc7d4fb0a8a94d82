package layer

import (
	"bufio"
	"context"
	"io"
)

// Decompress returns the uncompressed tar stream of a layer blob and the compression it found
// ("gzip", "zstd" or "tar"), picked by magic bytes as Extract picks it (media types lie).
// maxWindow bounds the zstd decoder's memory as Options.MaxZstdWindowBytes does (< 0: no
// bound). bzip2 and xz are refused with an error that names them.
func Decompress(r io.Reader, maxWindow int64) (io.ReadCloser, string, error) {
	return decompress(bufio.NewReaderSize(r, 1<<16), maxWindow)
}

// ContextReader returns a reader of r that fails with ctx's error once ctx ends, so a long
// copy stops soon after, not only between entries.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }
