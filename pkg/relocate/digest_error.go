package relocate

import (
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrDigestChanged is wrapped by the error of a copy whose target does not serve the
// image, or one of its manifests, under the source's digest.
var ErrDigestChanged = errors.New("digest not preserved")

// DigestError says which image lost its digest where.
type DigestError struct {
	Image  string  // the source, "registry/repository[:tag][@digest]"
	Target string  // where it was copied, same form
	Want   v1.Hash // the source's digest (of the image, or of one manifest of its index)
	Got    v1.Hash // what the target serves; zero when it did not say
	Err    error   // the target's answer when it did not say which digest it holds
}

func (e *DigestError) Error() string {
	msg := fmt.Sprintf("%s: relocating %s to %s: source %s", ErrDigestChanged, e.Image, e.Target, e.Want)
	if e.Got != (v1.Hash{}) {
		msg += ", target " + e.Got.String()
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrDigestChanged) true.
func (e *DigestError) Is(target error) bool { return target == ErrDigestChanged }

func (e *DigestError) Unwrap() error { return e.Err }
