package bus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"flatbed.dev/events/bus"
)

// Outputs ending at once in several processes are all recorded; recording one again changes
// nothing; a wish id with ':' is a key; a record survives a new bus on the same server.
func TestWishesRecordEveryOutput(t *testing.T) {
	ns, b := startBus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const wish = "run:1.wish-2"
	outputs := []string{"unpacked", "relocated", "exported", "lazy"}
	var wg sync.WaitGroup
	for _, o := range outputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := b.Wishes(ctx) // a handle of its own, as another process has
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := w.End(ctx, wish, o, json.RawMessage(fmt.Sprintf(`{"output":%q}`, o))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b2, err := bus.New(ctx, bus.Options{Connect: ns.Connect, Source: "flatbed/test2", Registerer: nil})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	w, err := b2.Wishes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ended, err := w.End(ctx, wish, "unpacked", json.RawMessage(`{"output":"again"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(ended) != len(outputs) {
		t.Fatalf("recorded %v, want all of %v", ended, outputs)
	}
	for _, o := range outputs {
		if got, want := string(ended[o]), fmt.Sprintf(`{"output":%q}`, o); got != want {
			t.Errorf("%s: recorded %s, want %s (the first record stands)", o, got, want)
		}
	}
	if err := w.Forget(ctx, wish); err != nil {
		t.Fatal(err)
	}
	if err := w.Forget(ctx, wish); err != nil {
		t.Errorf("forgetting twice: %v", err)
	}
	ended, err = w.End(ctx, wish, "relocated", json.RawMessage(`{}`))
	if err != nil || len(ended) != 1 {
		t.Errorf("after Forget: %v, %v; want only the new record", ended, err)
	}
}
