package events

// Failed builds the image.failed event a stage publishes when it gives up on an image. Its
// id is derived from the wish, the stage and the layer, so a stage that gives up twice (a
// redelivery after a crash) publishes a duplicate JetStream drops.
func Failed(source string, f ImageFailed) (*Envelope, error) {
	parts := []string{f.Job.WishID, f.Stage}
	if f.Layer != "" {
		parts = append(parts, f.Layer)
	}
	return New(ImageFailedType, source, ID(ImageFailedType, parts...), f.Job, f.Job.Image, f)
}
