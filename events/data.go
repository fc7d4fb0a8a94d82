package events

import "time"

// Job is what one wish asks for. Every event carries it unchanged, so any stage (and anyone
// running `nats sub`) can tell which wish and which run an event belongs to.
type Job struct {
	WishID        string    `json:"wish_id"`                 // one image of one submission
	CorrelationID string    `json:"correlation_id"`          // the whole run (e.g. one `flatbed convert`)
	Image         string    `json:"image"`                   // as wished: [scheme://]registry/repo[:tag][@digest]
	CvmfsRepo     string    `json:"cvmfs_repo"`              // repository under the store root, e.g. unpacked.cern.ch
	ThinImage     string    `json:"thin_image,omitempty"`    // where the thin image goes; "" with SkipThin
	SkipThin      bool      `json:"skip_thin,omitempty"`     // -i/--skip-thin-image
	ConvertAgain  bool      `json:"convert_again,omitempty"` // -g/--convert-again: ignore "already converted"
	SkipPodman    bool      `json:"skip_podman,omitempty"`   // -p/--skip-podman: no podman store entry
	MultiArch     bool      `json:"multi_arch,omitempty"`    // -m/--multi-arch: every linux platform of an index
	User          string    `json:"user,omitempty"`          // wishlist "user" (registry login for the thin image)
	SubmittedAt   time.Time `json:"submitted_at"`

	// Outputs names what the wish asks for (OutputUnpacked, OutputThin, OutputRelocated);
	// empty asks for the unpacked store and the thin image, as every wish did before outputs.
	Outputs []string `json:"outputs,omitempty"`
	// RelocatePrefix is the repository prefix the relocated output goes under,
	// "[http://]registry[:port][/path]"; RelocateNoFlatten keeps the original hierarchy below
	// it instead of duffle's flat name.
	RelocatePrefix    string `json:"relocate_prefix,omitempty"`
	RelocateNoFlatten bool   `json:"relocate_no_flatten,omitempty"`

	// The lazy output (OutputLazy): LazyImage is where the converted image goes,
	// "[scheme://]registry/repository[:tag]"; LazyFormat the format (estargz, zstd-chunked);
	// LazyOCI writes OCI media types; LazyReferrer pushes the converted manifests with a
	// subject naming the original; LazyPrioritized lists the files eStargz puts first.
	LazyImage       string   `json:"lazy_image,omitempty"`
	LazyFormat      string   `json:"lazy_format,omitempty"`
	LazyOCI         bool     `json:"lazy_oci,omitempty"`
	LazyReferrer    bool     `json:"lazy_referrer,omitempty"`
	LazyPrioritized []string `json:"lazy_prioritized,omitempty"`

	// The exported output (OutputExported): ExportRemote is the registry-less remote,
	// dir:///PATH or s3://BUCKET[/PREFIX][?region=R&endpoint=URL], never with credentials;
	// ExportCompress "zstd" keeps layers recompressed there.
	ExportRemote   string `json:"export_remote,omitempty"`
	ExportCompress string `json:"export_compress,omitempty"`
}

// Layer is one layer of a resolved image.
type Layer struct {
	Digest    string `json:"digest"`  // compressed, sha256:…
	DiffID    string `json:"diff_id"` // uncompressed, sha256:…
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
}

// Config is the part of the image configuration the later stages use.
type Config struct {
	Env        []string          `json:"env,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	WorkingDir string            `json:"working_dir,omitempty"`
	User       string            `json:"user,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// Image names a resolved image: one platform's manifest. Events carry only this reference;
// what the image holds (its layers and config) is stored once, content-addressed, in the
// image description store (see Descriptions), so an event's size does not grow with the image.
type Image struct {
	Registry     string `json:"registry"`
	Repository   string `json:"repository"`
	Tag          string `json:"tag,omitempty"`
	Name         string `json:"name"`          // registry/repository:tag (or @digest): the store name
	Digest       string `json:"digest"`        // manifest digest, sha256:…
	MediaType    string `json:"media_type"`    // manifest media type
	ConfigDigest string `json:"config_digest"` // the image ID; names .flat/<xx>/<hex>
	Platform     string `json:"platform,omitempty"`
	LayerCount   int    `json:"layer_count"` // layers in the manifest
	// IndexDigest is the digest of the index the tag named, when Digest is the manifest picked
	// from it for Platform: what a HEAD of the tag answers while the image is unchanged.
	IndexDigest string `json:"index_digest,omitempty"`
}

// WishSubmitted asks for one image to be converted.
type WishSubmitted struct {
	Job Job `json:"job"`
}

// ImageResolved says what the image is and whether it is already in the store.
type ImageResolved struct {
	Job              Job   `json:"job"`
	Image            Image `json:"image"`
	AlreadyConverted bool  `json:"already_converted"`
	// Platforms are the platforms chosen from the index the tag named, when the wish asked
	// for more than one (-m): each a reference like Image (same name and index, its own
	// manifest), Image being one of them. Empty for a single image.
	Platforms []Image `json:"platforms,omitempty"`
}

// LayerRequested asks an ingester for one layer of an image.
type LayerRequested struct {
	Job   Job   `json:"job"`
	Image Image `json:"image"`
	Index int   `json:"index"` // position of Layer in the image's layers
	Layer Layer `json:"layer"`
	// Again counts the flattener's requests for a layer that this wish saw ingested and that
	// then went missing from the store (0: the resolver's request). The ingester copies it
	// into its layer.ingested, whose id then differs from the first's, so JetStream's
	// duplicate window does not drop the news that the layer is back.
	Again int `json:"again,omitempty"`
}

// LayerIngested says one layer of an image is in the store (unpacked now, or already there).
type LayerIngested struct {
	Job            Job     `json:"job"`
	Image          Image   `json:"image"`
	Index          int     `json:"index"`
	Layer          Layer   `json:"layer"`
	AlreadyPresent bool    `json:"already_present"`
	Path           string  `json:"path"`  // .layers/xx/<hex>/layerfs, relative to the repository
	Bytes          int64   `json:"bytes"` // compressed bytes fetched (0 when already present)
	Seconds        float64 `json:"seconds"`
	Again          int     `json:"again,omitempty"` // the request's Again
}

// ImageFlattened says the flat root file system and the public path exist.
type ImageFlattened struct {
	Job            Job     `json:"job"`
	Image          Image   `json:"image"`
	FlatPath       string  `json:"flat_path"`   // .flat/xx/<hex>, relative to the repository
	PublicPath     string  `json:"public_path"` // registry/repo:tag, relative to the repository
	AlreadyPresent bool    `json:"already_present"`
	Seconds        float64 `json:"seconds"`
	// Podman: the image was listed in the repository's podman store (podmanStore/), taking
	// PodmanSeconds (DUCC's start/end_podman_ingestion lines).
	Podman        bool    `json:"podman,omitempty"`
	PodmanSeconds float64 `json:"podman_seconds,omitempty"`

	// Platforms is, for a multi-arch image (-m), every platform's flat tree, the public path
	// then being a variant symlink through $(CVMFS_ARCH); Image and FlatPath are one of them.
	Platforms []FlatPlatform `json:"platforms,omitempty"`
}

// ThinPushed says the thin image was pushed (or skipped on request).
type ThinPushed struct {
	Job        Job     `json:"job"`
	Image      Image   `json:"image"`
	FlatPath   string  `json:"flat_path"`
	PublicPath string  `json:"public_path"`
	ThinImage  string  `json:"thin_image,omitempty"`
	ThinDigest string  `json:"thin_digest,omitempty"`
	Skipped    bool    `json:"skipped"`
	Seconds    float64 `json:"seconds"`
	// AlreadyConverted: the image was in the store already (image.resolved said so) and only
	// its thin image was pushed, or found in place; the wish ends with this event.
	AlreadyConverted bool `json:"already_converted,omitempty"`
}

// ImageRelocated says the image, as wished, was copied under the wish's relocation prefix
// with every digest kept.
type ImageRelocated struct {
	Job     Job     `json:"job"`
	Image   Image   `json:"image"`
	Target  string  `json:"target"` // registry/repository[:tag]@digest, the digest the source has
	Seconds float64 `json:"seconds"`
}

// ImageFailed is a stage giving up on an image; the notifier turns it into ConversionFailed.
type ImageFailed struct {
	Job   Job    `json:"job"`
	Image *Image `json:"image,omitempty"` // nil when the resolver could not resolve it
	Stage string `json:"stage"`
	Layer string `json:"layer,omitempty"` // the layer digest, when one layer failed
	Error string `json:"error"`
}

// ConversionCompleted is the end of a wish: the image is in the store.
type ConversionCompleted struct {
	Job              Job     `json:"job"`
	Image            Image   `json:"image"`
	Repository       string  `json:"repository"`  // the store repository root
	FlatPath         string  `json:"flat_path"`   // relative to Repository
	PublicPath       string  `json:"public_path"` // relative to Repository
	ThinImage        string  `json:"thin_image,omitempty"`
	ThinDigest       string  `json:"thin_digest,omitempty"`
	AlreadyConverted bool    `json:"already_converted"`
	Seconds          float64 `json:"seconds"`             // since the wish was submitted
	Relocated        string  `json:"relocated,omitempty"` // the relocated output, registry/repository[:tag]@digest
	Lazy             string  `json:"lazy,omitempty"`      // the lazy output, registry/repository[:tag]@digest
	Exported         string  `json:"exported,omitempty"`  // the exported output on Job.ExportRemote, registry/repository[:tag]@digest
}

// ConversionFailed is the end of a wish that did not convert.
type ConversionFailed struct {
	Job     Job     `json:"job"`
	Stage   string  `json:"stage"`
	Layer   string  `json:"layer,omitempty"`
	Error   string  `json:"error"`
	Seconds float64 `json:"seconds"`
}

// FlatPlatform is one platform of a multi-arch image in the store.
type FlatPlatform struct {
	Image    Image  `json:"image"`
	FlatPath string `json:"flat_path"` // .flat/xx/<hex>
	Path     string `json:"path"`      // .multiarch/<arch>[:<variant>]/registry/repo:tag
}
