package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/events"
	"flatbed.dev/events/schema"
	"flatbed.dev/pkg/store"
)

// checkLifecycleMsg checks a lifecycle event as a `nats sub` reader sees it (CloudEvents
// binary mode, its schema, its Validate) and returns its data decoded into v.
func checkLifecycleMsg(t *testing.T, m *nats.Msg, typ string, v any) {
	t.Helper()
	if m.Subject != events.Subject(typ) {
		t.Fatalf("%s on subject %s", typ, m.Subject)
	}
	for h, want := range map[string]string{"ce-specversion": "1.0", "ce-type": events.CEType(typ), "ce-dataschema": events.SchemaURL(typ), "ce-source": "flatbed/cli"} {
		if got := m.Header.Get(h); got != want {
			t.Errorf("%s: header %s = %q, want %q", typ, h, got, want)
		}
	}
	if m.Header.Get("ce-correlationid") == "" || m.Header.Get(nats.MsgIdHdr) != m.Header.Get("ce-id") {
		t.Errorf("%s: correlation id %q, Nats-Msg-Id %q, ce-id %q", typ, m.Header.Get("ce-correlationid"), m.Header.Get(nats.MsgIdHdr), m.Header.Get("ce-id"))
	}
	ev, err := events.Parse(m)
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	if err := schema.Validate(typ, ev.Data()); err != nil {
		t.Errorf("%s data against its schema: %v", typ, err)
	}
	if _, err := events.Check(typ, ev.Data()); err != nil {
		t.Errorf("%s data: %v", typ, err)
	}
	if err := json.Unmarshal(ev.Data(), v); err != nil {
		t.Fatal(err)
	}
}

// delete-image and garbage-collection say what they removed on the bus: image.deleted and
// store.collected, valid against their schemas, on a --nats server a subscriber listens to
// and, without --nats, in the embedded server's stream in --state-dir.
func TestLifecycleEventsOnTheBus(t *testing.T) {
	reg := harness.StartRegistry(t)
	refs, own := imagesOnABase(t, reg.Host, "one", "two", "three")
	storeRoot, state := t.TempDir(), t.TempDir()
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	runFlatbed(t, 0, "convert", writeRawWishlist(t, reg.Host, refs), "--store-root", storeRoot, "--state-dir", state, "-i")
	layerPath := func(name string) string {
		return ".layers/" + strings.TrimPrefix(own[name], "sha256:")[:2] + "/" + strings.TrimPrefix(own[name], "sha256:")
	}

	// With --nats: a subscriber hears both.
	url, _ := startNATSServerProcess(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(events.Prefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	one := reg.Host + "/apps/one:v1"
	runFlatbed(t, 0, "delete-image", mpRepo, one, "--store-root", storeRoot, "--nats", url)
	runFlatbed(t, 0, "delete-image", mpRepo, reg.Host+"/apps/two:v1", "--store-root", storeRoot, "--dry-run", "--nats", url)
	runFlatbed(t, 0, "gc", mpRepo, "--store-root", storeRoot, "--min-age", "-1s", "--grace-period", "0", "--nats", url)
	var got []*nats.Msg
	for {
		m, err := sub.NextMsg(2 * time.Second)
		if err != nil {
			break
		}
		got = append(got, m)
	}
	if len(got) != 2 {
		t.Fatalf("the subscriber heard %d events, want image.deleted then store.collected (a dry run says nothing)", len(got))
	}
	var del events.ImageDeleted
	checkLifecycleMsg(t, got[0], events.ImageDeletedType, &del)
	if del.CvmfsRepo != mpRepo || del.Name != one || !slices.Equal(del.Removed, []string{one, ".metadata/" + one}) || !del.PodmanEntry {
		t.Errorf("image.deleted %+v", del)
	}
	var col events.StoreCollected
	checkLifecycleMsg(t, got[1], events.StoreCollectedType, &col)
	if col.CvmfsRepo != mpRepo || col.RemovedCount != len(col.Removed) || !slices.Contains(col.Removed, layerPath("one")) || slices.Contains(col.Removed, layerPath("two")) {
		t.Errorf("store.collected %+v, want %s among the removed and not %s", col, layerPath("one"), layerPath("two"))
	}

	// Without --nats: the embedded server of --state-dir keeps them in its stream.
	two := reg.Host + "/apps/two:v1"
	runFlatbed(t, 0, "delete-image", mpRepo, two, "--store-root", storeRoot, "--state-dir", state)
	runFlatbed(t, 0, "gc", mpRepo, "--store-root", storeRoot, "--state-dir", state, "--min-age", "-1s")
	var stored []*nats.Msg
	for _, m := range readStoredEvents(t, state+"/jetstream") {
		if m.Subject == events.Subject(events.ImageDeletedType) || m.Subject == events.Subject(events.StoreCollectedType) {
			stored = append(stored, m)
		}
	}
	if len(stored) != 2 {
		t.Fatalf("the state directory's stream holds %d lifecycle events, want 2", len(stored))
	}
	del = events.ImageDeleted{}
	checkLifecycleMsg(t, stored[0], events.ImageDeletedType, &del)
	if del.Name != two {
		t.Errorf("stored image.deleted names %s, want %s", del.Name, two)
	}
	col = events.StoreCollected{}
	checkLifecycleMsg(t, stored[1], events.StoreCollectedType, &col)
	if !slices.Contains(col.Removed, layerPath("two")) {
		t.Errorf("stored store.collected %+v, want %s removed", col, layerPath("two"))
	}
}
