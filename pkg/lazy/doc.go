// Package lazy converts image layers to lazy-pull formats, the ones a runtime can start a
// container from before the whole image is downloaded: eStargz (stargz-snapshotter, containerd)
// and zstd:chunked (containers/storage: podman, CRI-O). A format is a Converter; Formats lists
// the ones built in, and Register adds another (an overlaybd converter calling overlaybd's
// C++ tools, on a machine that has them).
//
// A layer is converted as a stream: the source blob is read once, its digest checked, and its
// uncompressed tar spooled to a temporary file (eStargz needs to seek in it; never in memory);
// the converted blob goes to another temporary file whose digest and size are then known, so
// it can be pushed and recorded. Image rewrites the manifest and config around the converted
// layers.
package lazy
