package flatten

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"flatbed.dev/pkg/beneath"
	"flatbed.dev/pkg/layer"
)

// ErrMalformed is wrapped by Build's error when the image itself cannot be flattened, however
// often it is retried: its layers contradict each other (a hard link to a file no lower layer
// has, or to a directory, or placed below a symlink or a file of the lower layers). It also
// matches layer.ErrMalformed, so one errors.Is check finds an inconsistent image at either
// stage. Other errors of Build (I/O, no space, cancellation) may pass on a new attempt.
var ErrMalformed error = malformedImage{}

type malformedImage struct{}

func (malformedImage) Error() string { return "image cannot be flattened" }

// Is makes errors.Is(err, layer.ErrMalformed) hold for ErrMalformed too.
func (malformedImage) Is(target error) bool { return target == layer.ErrMalformed }

// unreachable marks err as the image's fault when it says that a path of the layer metadata
// does not lead anywhere in the tree the lower layers made (see isUnreachable): a retry builds
// the same tree. Other errors pass unchanged.
func unreachable(err error) error {
	if isUnreachable(err) {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return err
}

// isUnreachable reports errors of resolving a path below the root that only the tree can
// cause: the path is missing, runs below a symlink or a file, or is no valid path at all.
func isUnreachable(err error) bool {
	return beneath.IsUnreachable(err) || errors.Is(err, unix.EXDEV) || errors.Is(err, beneath.ErrInvalidPath)
}
