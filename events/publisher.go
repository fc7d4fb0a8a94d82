package events

import "context"

// Publisher is what a stage needs of the bus: publish an event, returning once it is stored.
// bus.Bus implements it; eventstest.Bus records instead, for unit tests.
type Publisher interface {
	Publish(ctx context.Context, env *Envelope) error
}

// Locker hands out leases that exclude other processes (bus.Locks implements it), so that two
// workers never do the same expensive work at once.
type Locker interface {
	Lock(ctx context.Context, key string) (release func(), err error)
}

// LeaseHolder is a Locker whose leases can be lost — not renewed in time and taken over — and
// that says so: Hold's context ends (bus.ErrLeaseLost its cause) when another process may
// own the key, so that the work done under the lease stops. bus.Locks implements it.
type LeaseHolder interface {
	Hold(ctx context.Context, key string) (held context.Context, release func(), err error)
}

// Hold takes the lease on key from l. The context it returns ends when the lease is lost, if
// l can tell (LeaseHolder), and in any case when release is called.
func Hold(ctx context.Context, l Locker, key string) (held context.Context, release func(), err error) {
	if h, ok := l.(LeaseHolder); ok {
		return h.Hold(ctx, key)
	}
	unlock, err := l.Lock(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	held, cancel := context.WithCancel(ctx)
	return held, func() { cancel(); unlock() }, nil
}
