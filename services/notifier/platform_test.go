package notifier

import (
	"testing"

	"flatbed.dev/events"
)

// A failed platform of a -m wish is named in the wish's failure, once; other failures are
// left as they are.
func TestPlatformError(t *testing.T) {
	img := &events.Image{Platform: "linux/arm64/v8", IndexDigest: "sha256:x"}
	multi := events.Job{MultiArch: true}
	for _, c := range []struct {
		in   events.ImageFailed
		want string
	}{
		{events.ImageFailed{Job: multi, Image: img, Error: "layer unsafe"}, "platform linux/arm64/v8: layer unsafe"},
		{events.ImageFailed{Job: multi, Image: img, Error: "platform linux/arm64/v8: layer unsafe"}, "platform linux/arm64/v8: layer unsafe"},
		{events.ImageFailed{Job: events.Job{}, Image: img, Error: "layer unsafe"}, "layer unsafe"},
		{events.ImageFailed{Job: multi, Error: "no such image"}, "no such image"},
	} {
		if got := platformError(c.in); got != c.want {
			t.Errorf("platformError(%q) = %q, want %q", c.in.Error, got, c.want)
		}
	}
}
