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
