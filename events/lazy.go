package events

import (
	"fmt"
	"regexp"
)

// OutputLazy is the lazy-pull output: the image converted to eStargz or zstd:chunked and
// pushed to Job.LazyImage by the lazy stage, which ends it with image.lazified.
const OutputLazy = "lazy"

// ImageLazifiedType is the lazy stage's result.
const ImageLazifiedType = "image.lazified"

// lazyFormatRe is what a lazy-pull format's name may be; the lazy stage refuses one it does
// not make (formats are pluggable, so the list is the stage's).
var lazyFormatRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// maxPrioritized bounds Job.LazyPrioritized.
const maxPrioritized = 1000

// ImageLazified says the image, as wished, was converted to a lazy-pull format and pushed.
type ImageLazified struct {
	Job    Job    `json:"job"`
	Image  Image  `json:"image"`
	Target string `json:"target"` // registry/repository[:tag]@digest of the converted image or index
	Format string `json:"format"`
	// Cached: the dedup store knew the whole image as converted; it was only tagged.
	Cached bool `json:"cached"`
	// Layers of the converted image (every platform's), of which Converted were converted now
	// and Reused taken from the dedup store; Bytes converted bytes pushed.
	Layers    int     `json:"layers"`
	Converted int     `json:"converted"`
	Reused    int     `json:"reused"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
}

// Validate checks a lazified image.
func (e *ImageLazified) Validate() error {
	return all(e.Job.Validate, e.Image.Validate,
		func() error { return checkPinned("target", e.Target, true) },
		func() error { return checkLazyFormat("format", e.Format) },
		func() error {
			if e.Layers < 0 || e.Converted < 0 || e.Reused < 0 || e.Converted+e.Reused > e.Layers || e.Layers > MaxLayers*64 {
				return fmt.Errorf("layers %d, converted %d, reused %d: want 0 <= converted+reused <= layers", e.Layers, e.Converted, e.Reused)
			}
			return nil
		},
		func() error { return checkNonNegative("bytes and seconds", float64(e.Bytes), e.Seconds) })
}

// checkLazy checks the settings of the lazy output: given only when it is asked for, and then
// a format and where the converted image goes.
func (j Job) checkLazy() error {
	if !j.Wants(OutputLazy) {
		if j.LazyImage != "" || j.LazyFormat != "" || j.LazyOCI || j.LazyReferrer || len(j.LazyPrioritized) > 0 {
			return fmt.Errorf("job.lazy_*: given, but job.outputs does not ask for %s", OutputLazy)
		}
		return nil
	}
	if j.LazyImage == "" {
		return fmt.Errorf("job.lazy_image: empty, but job.outputs asks for %s", OutputLazy)
	}
	if err := checkImageText("job.lazy_image", j.LazyImage, true); err != nil {
		return err
	}
	if err := checkLazyFormat("job.lazy_format", j.LazyFormat); err != nil {
		return err
	}
	if len(j.LazyPrioritized) > maxPrioritized {
		return fmt.Errorf("job.lazy_prioritized names %d files, over %d", len(j.LazyPrioritized), maxPrioritized)
	}
	for _, p := range j.LazyPrioritized {
		if err := checkText("job.lazy_prioritized", p, 4096); err != nil || p == "" {
			return fmt.Errorf("job.lazy_prioritized: %q is not a path in a layer", clip(p))
		}
	}
	return nil
}

func checkLazyFormat(field, f string) error {
	if !lazyFormatRe.MatchString(f) {
		return fmt.Errorf("%s %q is not a lazy-pull format name (estargz, zstd-chunked)", field, clip(f))
	}
	return nil
}
