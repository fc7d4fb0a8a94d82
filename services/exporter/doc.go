// Package exporter is the stage of the exported output: it writes the image a wish names,
// pinned to what the resolver read (an index whole, every platform), to the wish's
// registry-less remote (a directory or an S3 bucket holding an OCI image layout, package
// dumbremote), only the blobs the remote lacks, and says so with image.exported.
package exporter
