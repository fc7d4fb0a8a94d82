// Package dumbremote keeps images on a remote without a registry, as dogestry did: a
// directory (dir:///path) or an S3 bucket (s3://bucket/prefix?region=…&endpoint=…) holding an
// OCI image layout.
//
// The layout on the remote:
//
//	oci-layout                      {"imageLayoutVersion": "1.0.0"}
//	blobs/sha256/<hex>              a blob, content-addressed: manifests, indexes, configs, layers
//	blobs/sha256/<hex>.sha256       its sidecar checksum ("<hex>  <hex>", sha256sum -c format),
//	                                written only after the blob was written whole and checked
//	refs/<registry>/<repository>/<tag>
//	                                a reference: the OCI descriptor (JSON) of the manifest or index
//	ids/<hex[0:2]>/<hex>            an id (manifest, index or config digest) → the descriptor of
//	                                its manifest or index, so an id prefix resolves by listing one
//	                                shard, never the whole remote
//	recompressed/sha256/<hex>       a layer kept recompressed (--compress zstd): the descriptor of
//	                                the blob that holds it, with its diff_id
//	index.json                      the OCI index of every reference, rebuilt after each export
//	                                from refs/ (a view for OCI tools; refs/ is what counts)
//
// A blob counts as present when its sidecar is: each is written once, to a temporary name and
// renamed (dir) or with one PUT (S3, whose objects appear whole or not at all) and checked,
// before its sidecar. Concurrent writers of one blob write the same bytes, so they never
// corrupt each other; a writer killed half-way leaves at most a blob without a sidecar, which
// the next export writes again. References are written last, after everything they name.
package dumbremote
