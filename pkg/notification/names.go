package notification

// Actions, exactly as DUCC writes them in the "action" field.
const (
	ActionStartDucc                  = "start_ducc" // with pid
	ActionEndDucc                    = "end_ducc"   // with pid, time_elapsed_s
	ActionStartLayerConversion       = "start_layer_conversion"
	ActionEndLayerConversion         = "end_layer_conversion" // with status, size_bytes, time_elapsed_s
	ActionPublishLayer               = "publish_layer"        // with layer_digest
	ActionStartFlatConversion        = "start_flat_conversion"
	ActionEndFlatConversion          = "end_flat_conversion"
	ActionStartFlatOverlayConversion = "start_flat_overlay_conversion"
	ActionEndFlatOverlayConversion   = "end_flat_overlay_conversion"
	ActionPublishFlatImage           = "publish_flat_image" // with public_path, private_path
	ActionStartPodmanIngestion       = "start_podman_ingestion"
	ActionEndPodmanIngestion         = "end_podman_ingestion"
)

// Field names DUCC uses. Every value is a string.
const (
	FieldAction       = "action"
	FieldTime         = "time"           // TimeLayout
	FieldID           = "id"             // pairs a start with its end
	FieldElapsed      = "time_elapsed_s" // seconds, "%f"
	FieldSizeBytes    = "size_bytes"
	FieldStatus       = "status" // StatusOK or StatusError
	FieldError        = "error"
	FieldImage        = "image"         // "registry/repository:tag", maybe " (os/arch)"
	FieldImageRequest = "image_request" // the wish's input, as written
	FieldLayer        = "layer"         // hex digest, on layer conversions
	FieldLayerDigest  = "layer_digest"  // hex digest, on publish_layer
	FieldPublicPath   = "public_path"
	FieldPrivatePath  = "private_path"
	FieldPID          = "pid"
)

// Status values.
const (
	StatusOK    = "ok"
	StatusError = "error"
)

// TimeLayout is the Go layout of the "time" field.
const TimeLayout = "_2 Jan 2006 - 15:04:05.000"
