package events

// Stream is the JetStream stream that holds every pipeline event (subjects Prefix + ">").
const Stream = "FLATBED"

// DeadStream holds messages no handler could decode, kept apart so JetStream's duplicate
// window never drops them as re-publishes of the original.
const DeadStream = "FLATBED_DEAD"

// Prefix starts every subject; the CloudEvents type is TypePrefix + the rest.
const (
	Prefix     = "flatbed."
	TypePrefix = "dev.flatbed."
	DeadPrefix = "flatbed-dead."
)

// The event types, in pipeline order. Each is also the subject's tail: Subject(t).
const (
	WishSubmittedType       = "wish.submitted"
	ImageResolvedType       = "image.resolved"
	LayerRequestedType      = "layer.requested"
	LayerIngestedType       = "layer.ingested"
	ImageFlattenedType      = "image.flattened"
	ThinPushedType          = "thin.pushed"
	ImageRelocatedType      = "image.relocated"
	ImageFailedType         = "image.failed"
	ConversionCompletedType = "conversion.completed"
	ConversionFailedType    = "conversion.failed"

	// Lifecycle: not part of a conversion (events/lifecycle.go).
	ImageDeletedType   = "image.deleted"
	StoreCollectedType = "store.collected"
)

// Types lists every event type with a value of its data, for schemas and validation.
func Types() map[string]any {
	return map[string]any{
		WishSubmittedType:       &WishSubmitted{},
		ImageResolvedType:       &ImageResolved{},
		LayerRequestedType:      &LayerRequested{},
		LayerIngestedType:       &LayerIngested{},
		ImageFlattenedType:      &ImageFlattened{},
		ThinPushedType:          &ThinPushed{},
		ImageRelocatedType:      &ImageRelocated{},
		ImageLazifiedType:       &ImageLazified{},
		ImageExportedType:       &ImageExported{},
		ImageFailedType:         &ImageFailed{},
		ConversionCompletedType: &ConversionCompleted{},
		ConversionFailedType:    &ConversionFailed{},
		ImageDeletedType:        &ImageDeleted{},
		StoreCollectedType:      &StoreCollected{},
	}
}

// Subject is the NATS subject events of type t travel on.
func Subject(t string) string { return Prefix + t }

// CEType is the CloudEvents "type" attribute of events of type t.
func CEType(t string) string { return TypePrefix + t }

// SchemaURL is the CloudEvents "dataschema" of events of type t; the file is schemas/<t>.json.
func SchemaURL(t string) string { return "https://flatbed.dev/schemas/" + t + ".json" }
