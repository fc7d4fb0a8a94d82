package events

import (
	"context"
	"encoding/json"
)

// Endings is the fan-in of a wish that asked for several outputs: what each output that has
// ended produced, kept until every one has, so that the notifier ends the wish then.
// bus.Wishes keeps it in JetStream KV, so a restart loses nothing.
type Endings interface {
	// End records that output of the wish ended with result, a JSON value (recording it
	// again is harmless: the first record stands), and returns the results of every output
	// of the wish that has ended so far.
	End(ctx context.Context, wishID, output string, result json.RawMessage) (map[string]json.RawMessage, error)
	// Forget drops what was recorded of the wish, once it has ended.
	Forget(ctx context.Context, wishID string) error
}
