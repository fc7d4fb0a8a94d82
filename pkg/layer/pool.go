package layer

import "sync"

// copyBufSize is large enough to make big files cheap to write and small enough that many
// concurrent extractions stay light.
const copyBufSize = 256 << 10

// bufPool recycles copy buffers across files and extractions: a layer holds thousands of
// files, and io.Copy into an *os.File would otherwise allocate a fresh buffer for each.
var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}
