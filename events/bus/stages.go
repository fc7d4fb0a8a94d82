package bus

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// Stage is the server's view of one stage's durable consumer: whether a worker is there and
// how much work waits for it. Every stage's consumer is declared when any process opens the
// bus, so that it exists proves nothing; a pull request waiting does.
type Stage struct {
	Name       string
	Waiting    int    // pull requests waiting for messages: idle workers
	Pending    uint64 // messages not delivered yet
	InProgress int    // delivered and not yet acknowledged
}

// Worked says a worker of the stage is there: it waits for work, or holds some (a worker
// that died lets go of what it held after the consumer's ack wait).
func (s Stage) Worked() bool { return s.Waiting > 0 || s.InProgress > 0 }

// Stages reads the consumers of the named stages (events.Consumers names them all). A stage
// whose consumer does not exist is reported with zero counts.
func Stages(ctx context.Context, js jetstream.JetStream, names []string) ([]Stage, error) {
	out := make([]Stage, 0, len(names))
	for _, name := range names {
		info, err := consumerInfo(ctx, js, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			out = append(out, Stage{Name: name})
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Stage{Name: name, Waiting: info.NumWaiting, Pending: info.NumPending, InProgress: info.NumAckPending})
	}
	return out, nil
}
