package notifier

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// fakeBus records what a service publishes.
type fakeBus struct {
	mu   sync.Mutex
	envs []*events.Envelope
}

func (f *fakeBus) Publish(_ context.Context, env *events.Envelope) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.envs = append(f.envs, env)
	return nil
}

func (f *fakeBus) ofType(typ string) []*events.Envelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*events.Envelope
	for _, e := range f.envs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (f *fakeBus) types() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.envs {
		out = append(out, e.Type)
	}
	return out
}

// decode returns the data of env, checking the envelope is consistent.
func decode[T any](t *testing.T, env *events.Envelope) T {
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

// delivery is what the bus would hand the handler for data of type typ.
func delivery(t *testing.T, typ string, job events.Job, data any, attempt int) *bus.Delivery {
	t.Helper()
	env, err := events.New(typ, "flatbed/test", events.ID(typ, job.WishID, t.Name()), job, job.Image, data)
	if err != nil {
		t.Fatal(err)
	}
	return &bus.Delivery{Event: &env.Event, Type: typ, Attempt: attempt, MaxAttempts: 3}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testJob(image string) events.Job {
	return events.Job{WishID: "wish-1", CorrelationID: "run-1", Image: image, CvmfsRepo: "unpacked.cern.ch"}
}

// fakeLines records notification lines.
type fakeLines struct {
	mu    sync.Mutex
	lines []map[string]string
	err   error
}

func (f *fakeLines) Write(_ context.Context, fields map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	c := make(map[string]string, len(fields))
	for k, v := range fields {
		c[k] = v
	}
	f.lines = append(f.lines, c)
	return nil
}
