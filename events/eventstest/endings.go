package eventstest

import (
	"context"
	"encoding/json"
	"maps"
	"sync"

	"flatbed.dev/events"
)

// Endings is an in-memory events.Endings. Its zero value is ready to use.
type Endings struct {
	mu     sync.Mutex
	wishes map[string]map[string]json.RawMessage
}

var _ events.Endings = (*Endings)(nil)

// End records result for output of the wish unless it is recorded already.
func (e *Endings) End(_ context.Context, wishID, output string, result json.RawMessage) (map[string]json.RawMessage, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.wishes == nil {
		e.wishes = map[string]map[string]json.RawMessage{}
	}
	ended := e.wishes[wishID]
	if ended == nil {
		ended = map[string]json.RawMessage{}
		e.wishes[wishID] = ended
	}
	if _, ok := ended[output]; !ok {
		ended[output] = result
	}
	return maps.Clone(ended), nil
}

// Forget drops the wish's record.
func (e *Endings) Forget(_ context.Context, wishID string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.wishes, wishID)
	return nil
}

// Recorded says how many wishes have a record.
func (e *Endings) Recorded() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.wishes)
}
