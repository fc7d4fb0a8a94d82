// Package lazy is the stage of the lazy output: it converts the image a wish names to a
// lazy-pull format (eStargz or zstd:chunked, pkg/lazy) and pushes it where the wish says, every
// platform of an index, never converting a layer twice (a dedup store in JetStream KV shared
// by every replica), and ends the output with image.lazified.
package lazy
