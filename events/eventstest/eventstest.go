package eventstest

import (
	"context"
	"slices"
	"sync"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// Bus is a publisher that records every envelope it is given. Its zero value is ready to use
// and it is safe for concurrent use.
type Bus struct {
	mu   sync.Mutex
	envs []*events.Envelope
}

// Publish records env; it never fails.
func (b *Bus) Publish(_ context.Context, env *events.Envelope) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.envs = append(b.envs, env)
	return nil
}

// Envelopes returns every envelope published so far, in order.
func (b *Bus) Envelopes() []*events.Envelope {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.envs)
}

// Reset forgets the envelopes published so far.
func (b *Bus) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.envs = nil
}

// OfType returns the envelopes of type typ published so far, in order.
func (b *Bus) OfType(typ string) []*events.Envelope {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*events.Envelope
	for _, e := range b.envs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// Types returns the type of every envelope published so far, in order.
func (b *Bus) Types() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, e := range b.envs {
		out = append(out, e.Type)
	}
	return out
}

// Decode returns the data of env, checking the envelope is consistent: the CloudEvent's
// type must be the one env.Type names.
func Decode[T any](t testing.TB, env *events.Envelope) T {
	t.Helper()
	var v T
	if got, want := env.Event.Type(), events.CEType(env.Type); got != want {
		t.Errorf("CloudEvent type = %q, want %q", got, want)
	}
	if err := events.Decode(&env.Event, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Delivery is what the bus would hand a handler for data of type typ on the given attempt
// (of at most 3), its event ID derived from typ, the job's wish and the test's name.
func Delivery(t testing.TB, typ string, job events.Job, data any, attempt int) *bus.Delivery {
	t.Helper()
	env, err := events.New(typ, "flatbed/test", events.ID(typ, job.WishID, t.Name()), job, job.Image, data)
	if err != nil {
		t.Fatal(err)
	}
	return &bus.Delivery{Event: &env.Event, Type: typ, Attempt: attempt, MaxAttempts: 3}
}

// Job is the job the service tests use for image.
func Job(image string) events.Job {
	return events.Job{WishID: "wish-1", CorrelationID: "run-1", Image: image, CvmfsRepo: "unpacked.cern.ch"}
}
