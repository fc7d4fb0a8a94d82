package events

// Consumers names the durable consumer of each pipeline stage and the event types it reads.
// Every process declares them all when it opens the bus, so that events published before a
// stage first starts wait for it: the stream keeps what a declared consumer has not seen.
func Consumers() map[string][]string {
	return map[string][]string{
		"resolver":   {WishSubmittedType},
		"ingester":   {LayerRequestedType},
		"flattener":  {LayerIngestedType},
		"thinpusher": {ImageFlattenedType, ImageResolvedType}, // image.resolved: thin images of images already converted
		"relocator":  {ImageResolvedType},
		"lazy":       {ImageResolvedType},
		"exporter":   {ImageResolvedType},
		"notifier":   {ImageResolvedType, ImageExportedType, LayerIngestedType, ImageFlattenedType, ThinPushedType, ImageRelocatedType, ImageLazifiedType, ImageFailedType},
	}
}
