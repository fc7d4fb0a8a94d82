package bus_test

import (
	"context"
	"testing"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
)

// Run returns only once the handler in flight has finished and its ack is stored: nothing is
// left for the server to redeliver.
func TestRunWaitsForTheAckOfTheHandlerInFlight(t *testing.T) {
	_, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started, finish := make(chan struct{}), make(chan struct{})
	if err := b.Handle(ctx, bus.Consumer{Name: "slow", Types: []string{events.WishSubmittedType}},
		func(ctx context.Context, d *bus.Delivery) error {
			close(started)
			<-finish
			return ctx.Err() // the handler's context lives on while the bus drains
		}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- b.Run(runCtx) }()
	<-b.Running()
	publish(t, ctx, b, validJob)
	<-started
	stop()
	select {
	case err := <-ran:
		t.Fatalf("Run returned (%v) while its handler was still running", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(finish)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	cons, err := b.JetStream().Consumer(ctx, events.Stream, "slow")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Consumer != 1 {
		t.Errorf("after Run returned: %d unacknowledged, %d pending, ack floor %d; want the one delivery acknowledged",
			info.NumAckPending, info.NumPending, info.AckFloor.Consumer)
	}
}
