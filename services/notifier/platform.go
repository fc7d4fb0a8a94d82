package notifier

import (
	"strings"

	"flatbed.dev/events"
)

// platformError is in's error naming the platform that failed, for one platform of a
// multi-arch (-m) wish, whichever stage reported it: the whole image fails with it.
func platformError(in events.ImageFailed) string {
	if in.Image == nil || !in.Job.MultiArch || in.Image.IndexDigest == "" || in.Image.Platform == "" ||
		strings.HasPrefix(in.Error, "platform ") {
		return in.Error
	}
	return "platform " + in.Image.Platform + ": " + in.Error
}
