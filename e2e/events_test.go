package e2e

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/events/schema"
)

// checkStoredEvents opens the JetStream state a finished run left behind and checks every
// event in it: CloudEvents binary mode, a valid CloudEvent, data valid against its schema,
// and exactly one conversion.completed per wish.
func checkStoredEvents(t *testing.T, jsDir string, images int) {
	t.Helper()
	seen := map[string]int{}
	completed := map[string]int{}
	for _, m := range readStoredEvents(t, jsDir) {
		checkEventMsg(t, m, seen, completed)
	}
	for _, typ := range []string{events.WishSubmittedType, events.ImageResolvedType, events.LayerRequestedType, events.LayerIngestedType,
		events.ImageFlattenedType, events.ThinPushedType, events.ConversionCompletedType} {
		if seen[typ] == 0 {
			t.Errorf("no %s event in the stream", typ)
		}
	}
	if len(completed) != images {
		t.Errorf("conversion.completed for %d wishes, want %d", len(completed), images)
	}
	for wish, n := range completed {
		if n != 1 {
			t.Errorf("wish %s completed %d times, want exactly once", wish, n)
		}
	}
}

// checkEventMsg checks one message as a `nats sub` reader sees it.
func checkEventMsg(t *testing.T, m *nats.Msg, seen, completed map[string]int) {
	t.Helper()
	for _, h := range []string{"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-dataschema", "ce-time", "ce-wishid", "ce-correlationid"} {
		v := m.Header.Get(h)
		if v == "" {
			t.Errorf("%s: header %s missing (%v)", m.Subject, h, m.Header)
		}
		for _, r := range v {
			if r < 0x20 || r > 0x7e {
				t.Errorf("%s: header %s=%q is not printable ASCII", m.Subject, h, v)
				break
			}
		}
	}
	if m.Header.Get(nats.MsgIdHdr) != m.Header.Get("ce-id") {
		t.Errorf("%s: Nats-Msg-Id %q != ce-id %q", m.Subject, m.Header.Get(nats.MsgIdHdr), m.Header.Get("ce-id"))
	}
	if !json.Valid(m.Data) {
		t.Errorf("%s: data is not JSON", m.Subject)
	}
	ev, err := events.Parse(m)
	if err != nil {
		t.Errorf("%s: %v", m.Subject, err)
		return
	}
	typ := events.ShortType(ev)
	if events.Subject(typ) != m.Subject {
		t.Errorf("event type %s on subject %s", ev.Type(), m.Subject)
	}
	if err := schema.Validate(typ, ev.Data()); err != nil {
		t.Errorf("%s %s: %v", m.Subject, ev.ID(), err)
	}
	seen[typ]++
	if typ == events.ConversionCompletedType {
		var c events.ConversionCompleted
		if err := events.Decode(ev, &c); err == nil {
			completed[c.Job.WishID]++
		}
	}
}

// readStoredEvents returns, in order, every message of the pipeline stream in the JetStream
// state a finished run left behind (an embedded server is started on it for the reading).
func readStoredEvents(t *testing.T, jsDir string) []*nats.Msg {
	t.Helper()
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: jsDir})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := ns.Connect("e2e-reader")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*nats.Msg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out
}
