package events

import "errors"

// How a handler's error is treated, decided in one place (the bus):
//   - nil: the event is acknowledged;
//   - context.Canceled: the process is stopping; the event is handed back, no attempt counted;
//   - a Permanent error: no new attempt can mend it; the wish fails at once with it;
//   - any other error: tried again later, with back-off, until the consumer's attempts run
//     out, and then the wish fails with it.

// Permanent marks err as one that no new attempt can mend (a hostile layer, a missing
// image, refused credentials, an invalid event).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }
