package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/events"
	"flatbed.dev/events/schema"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/treecmp"
)

const (
	mpRepo = "e2e.flatbed.local"
	// mpConvertTimeout bounds one `flatbed convert` process; its own --timeout is a bit
	// shorter so that it reports the images it has no result for before it is killed.
	mpConvertTimeout    = 3 * time.Minute
	mpConvertOwnTimeout = "165s"
	mpGracefulStop      = 30 * time.Second
)

// mpServices in pipeline order, as `flatbed serve` names them.
var mpServices = []string{"resolver", "ingester", "flattener", "thinpusher", "notifier"}

// mpPipelineTypes is every event type a successful conversion emits.
var mpPipelineTypes = []string{
	events.WishSubmittedType, events.ImageResolvedType, events.LayerRequestedType, events.LayerIngestedType,
	events.ImageFlattenedType, events.ThinPushedType, events.ConversionCompletedType,
}

// mpPushImages starts a registry and pushes imgs to it.
func mpPushImages(t testing.TB, imgs []imagegen.Named) *harness.Registry {
	t.Helper()
	reg := harness.StartRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := imagegen.Push(ctx, reg.Host, imgs); err != nil {
		t.Fatal(err)
	}
	return reg
}

// mpWriteWishlist writes a DUCC v1 wishlist asking for every image of imgs on host.
func mpWriteWishlist(t testing.TB, host string, imgs []imagegen.Named) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nuser: e2e\ncvmfs_repo: '%s'\noutput_format: '$(scheme)://$(registry)/thin/$(repository):$(tag)'\ninput:\n", mpRepo)
	for _, img := range imgs {
		fmt.Fprintf(&b, "  - 'http://%s/%s'\n", host, img.Ref())
	}
	path := filepath.Join(t.TempDir(), "wishlist.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// mpStartConvert starts `flatbed convert WISHLIST ARGS...`, bounded by mpConvertTimeout.
func mpStartConvert(t testing.TB, name, wishlist string, args ...string) *childProcess {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mpConvertTimeout)
	t.Cleanup(cancel)
	args = append([]string{"convert", wishlist, "--timeout", mpConvertOwnTimeout}, args...)
	return startChild(t, ctx, name, flatbedBin, args...)
}

// mpWalkRepo walks a whole repository directory of a store. Temporary names (".tmp-…")
// are left out of the tree and reported: none may be left behind.
func mpWalkRepo(t testing.TB, root string) treecmp.Tree {
	t.Helper()
	var tmp []string
	tr, err := treecmp.Walk(root, func(rel string) bool {
		if strings.HasPrefix(filepath.Base(rel), ".tmp-") {
			tmp = append(tmp, rel)
			return true
		}
		return false
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	if len(tmp) > 0 {
		t.Errorf("%s: temporary names left behind:\n%s", root, strings.Join(tmp, "\n"))
	}
	return tr
}

// mpCompareStores asserts the repository of store b equals the one of the reference store a.
func mpCompareStores(t testing.TB, a, b string) {
	t.Helper()
	ta := mpWalkRepo(t, filepath.Join(a, mpRepo))
	tb := mpWalkRepo(t, filepath.Join(b, mpRepo))
	if len(ta) == 0 {
		t.Fatalf("reference store %s is empty", a)
	}
	if d := treecmp.Diff(ta, tb); len(d) > 0 {
		const max = 80
		more := ""
		if len(d) > max {
			more = fmt.Sprintf("\n... and %d more", len(d)-max)
			d = d[:max]
		}
		t.Errorf("store of the separate processes (b) differs from the single-process reference (a): %d difference(s):\n%s%s",
			len(d), strings.Join(d, "\n"), more)
		// Show both sides of small files that differ in content.
		for _, line := range d {
			p, _, ok := strings.Cut(line, ": sha256 ")
			if !ok || ta[p].Size > 4096 || tb[p].Size > 4096 {
				continue
			}
			ca, _ := os.ReadFile(filepath.Join(a, mpRepo, p))
			cb, _ := os.ReadFile(filepath.Join(b, mpRepo, p))
			t.Logf("%s:\n  a (reference): %s\n  b (processes): %s", p, ca, cb)
		}
	} else {
		t.Logf("stores equal: %d paths under %s", len(ta), mpRepo)
	}
}

// mpCheckPublicPaths asserts every image has its public path (a symlink resolving to a dir).
func mpCheckPublicPaths(t testing.TB, store, host string, imgs []imagegen.Named) {
	t.Helper()
	for _, img := range imgs {
		p := filepath.Join(store, mpRepo, host, img.Ref())
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("public path %s: %v (want a symlink)", p, err)
			continue
		}
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			t.Errorf("public path %s does not resolve to a directory: %v", p, err)
		}
	}
}

func TestServicesAsSeparateProcesses(tt *testing.T) {
	t := recordFailures(tt)
	imgs := append(imagegen.Corpus(), imagegen.Demo()...)
	reg := mpPushImages(t, imgs)
	wishlist := mpWriteWishlist(t, reg.Host, imgs)
	tmp := t.TempDir()
	storeA, storeB := filepath.Join(tmp, "A"), filepath.Join(tmp, "B")

	// Reference: every service in one process over an embedded NATS server.
	ref := mpStartConvert(t, "convert (embedded, reference)", wishlist, "--store-root", storeA, "--state-dir", filepath.Join(tmp, "SA"))
	if !ref.expectExit0(t) {
		t.FailNow()
	}
	mpCheckPublicPaths(t, storeA, reg.Host, imgs)

	// The same with one nats-server process and one process per service.
	natsURL, _ := startNATSServerProcess(t)
	sub := collectAllMessages(t, natsURL)
	servers := map[string]*childProcess{}
	for _, s := range mpServices {
		servers[s] = startServeProcess(t, s, natsURL, storeB, filepath.Join(tmp, "SB_"+s))
	}
	conv := mpStartConvert(t, "convert --nats", wishlist, "--nats", natsURL, "--store-root", storeB, "--state-dir", filepath.Join(tmp, "SC"))
	if !conv.expectExit0(t) {
		t.FailNow()
	}
	for _, s := range mpServices {
		if p := servers[s]; p.exited() {
			t.Errorf("%s exited during the conversion: %s", p.name, p.state())
		}
	}

	mpCheckPublicPaths(t, storeB, reg.Host, imgs)
	mpCompareStores(t, storeA, storeB)
	mpCheckEvents(t, sub.drain(t), len(imgs))

	for _, s := range mpServices {
		servers[s].stop(t, mpGracefulStop)
	}
}

// mpCheckEvents asserts the CloudEvents on flatbed.* subjects seen by a plain core NATS
// subscriber during one `flatbed convert` run of wished images.
func mpCheckEvents(t testing.TB, msgs []*nats.Msg, wished int) {
	t.Helper()
	byType := map[string]map[string]map[string]bool{} // type -> wish id -> ce ids
	correlations := map[string]bool{}
	flatbedMsgs, bad := 0, 0
	report := func(m *nats.Msg, format string, args ...any) {
		bad++
		if bad <= 40 {
			t.Errorf("%s [%s]: %s", m.Subject, m.Header.Get("ce-id"), fmt.Sprintf(format, args...))
		}
	}
	for _, m := range msgs {
		if !strings.HasPrefix(m.Subject, events.Prefix) {
			continue // $JS.API…, _INBOX.…, $JS.ACK…, dead letters, our marker
		}
		flatbedMsgs++
		// Header names exactly as on the wire (nats.go keeps their case).
		for _, h := range []string{"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-dataschema", "ce-wishid", "ce-correlationid"} {
			v, ok := m.Header[h]
			if !ok || len(v) != 1 || v[0] == "" {
				report(m, "header %s = %q (present %t), want exactly one non-empty value; headers %v", h, v, ok, m.Header)
			}
		}
		for k, vs := range m.Header {
			if lk := strings.ToLower(k); strings.HasPrefix(lk, "ce-") && k != lk {
				report(m, "header %q is not lower case", k)
			}
			for _, v := range vs {
				if !mpPrintableASCII(v) {
					report(m, "header %s value %q is not printable ASCII", k, v)
				}
			}
		}
		if v := m.Header.Get("ce-specversion"); v != "1.0" {
			report(m, "ce-specversion %q, want 1.0", v)
		}
		ceType := m.Header.Get("ce-type")
		short, ok := strings.CutPrefix(ceType, events.TypePrefix)
		if !ok {
			report(m, "ce-type %q does not start with %q", ceType, events.TypePrefix)
		}
		if m.Subject != events.Subject(short) {
			report(m, "subject %s, want %s for ce-type %s", m.Subject, events.Subject(short), ceType)
		}
		if got, want := m.Header.Get("ce-dataschema"), events.SchemaURL(short); got != want {
			report(m, "ce-dataschema %q, want %q", got, want)
		}
		if id := m.Header.Get("ce-id"); m.Header.Get(nats.MsgIdHdr) != id {
			report(m, "%s %q != ce-id %q", nats.MsgIdHdr, m.Header.Get(nats.MsgIdHdr), id)
		}
		if !json.Valid(m.Data) {
			report(m, "data is not JSON: %.200q", m.Data)
		}
		ev, err := events.Parse(m)
		if err != nil {
			report(m, "events.Parse: %v", err)
			continue
		}
		st := events.ShortType(ev)
		if st != short {
			report(m, "ShortType %q != %q", st, short)
		}
		if err := schema.Validate(st, ev.Data()); err != nil {
			report(m, "schema.Validate(%s): %v", st, err)
		}
		wish, _ := ev.Extensions()[events.ExtWishID].(string)
		corr, _ := ev.Extensions()[events.ExtCorrelationID].(string)
		if wish != m.Header.Get("ce-wishid") || corr != m.Header.Get("ce-correlationid") {
			report(m, "parsed extensions wishid %q correlationid %q differ from the headers", wish, corr)
		}
		correlations[corr] = true
		if byType[st] == nil {
			byType[st] = map[string]map[string]bool{}
		}
		if byType[st][wish] == nil {
			byType[st][wish] = map[string]bool{}
		}
		byType[st][wish][ev.ID()] = true
	}
	if bad > 40 {
		t.Errorf("... %d problems in all", bad)
	}
	summary := []string{}
	for _, typ := range mpSortedKeys(byType) {
		n := 0
		for _, ids := range byType[typ] {
			n += len(ids)
		}
		summary = append(summary, fmt.Sprintf("%s: %d wish(es), %d event id(s)", typ, len(byType[typ]), n))
	}
	t.Logf("collected %d messages, %d on %s*:\n%s", len(msgs), flatbedMsgs, events.Prefix, strings.Join(summary, "\n"))

	for _, typ := range mpPipelineTypes {
		if len(byType[typ]) == 0 {
			t.Errorf("no %s event seen", typ)
		}
	}
	for _, typ := range []string{events.ImageFailedType, events.ConversionFailedType} {
		if len(byType[typ]) > 0 {
			t.Errorf("%s events for %d wish(es)", typ, len(byType[typ]))
		}
	}
	if len(correlations) != 1 {
		t.Errorf("correlation ids %v, want one (one convert run)", mpSortedKeys(correlations))
	}
	wishes := byType[events.WishSubmittedType]
	if len(wishes) != wished {
		t.Errorf("wish.submitted for %d wish ids, want %d (one per image)", len(wishes), wished)
	}
	completed := byType[events.ConversionCompletedType]
	if len(completed) != wished {
		t.Errorf("conversion.completed for %d distinct wish ids, want %d (one per wished image)", len(completed), wished)
	}
	for wish, ids := range completed {
		if len(ids) != 1 {
			t.Errorf("wish %s: %d distinct conversion.completed events %v, want exactly one", wish, len(ids), mpSortedKeys(ids))
		}
		if wishes[wish] == nil {
			t.Errorf("conversion.completed for wish %s that was never submitted", wish)
		}
	}
	for typ, ws := range byType {
		for wish := range ws {
			if wishes[wish] == nil {
				t.Errorf("%s for unknown wish id %q", typ, wish)
			}
		}
	}
}

func mpPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func mpSortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestServiceStartedLaterPicksUpWork: with no ingester running nothing can complete; an
// ingester started later finds the layers that waited for it (durable consumers), and the
// convert that was waiting all along finishes.
func TestServiceStartedLaterPicksUpWork(tt *testing.T) {
	t := recordFailures(tt)
	imgs := imagegen.Demo()
	reg := mpPushImages(t, imgs)
	wishlist := mpWriteWishlist(t, reg.Host, imgs)
	tmp := t.TempDir()
	store := filepath.Join(tmp, "store")

	natsURL, _ := startNATSServerProcess(t)
	servers := map[string]*childProcess{}
	for _, s := range mpServices {
		if s != "ingester" {
			servers[s] = startServeProcess(t, s, natsURL, store, filepath.Join(tmp, "S_"+s))
		}
	}
	// --wait-for-stages: without it convert refuses at once, naming the ingester.
	conv := mpStartConvert(t, "convert --nats (waiting)", wishlist, "--nats", natsURL, "--store-root", store, "--state-dir", filepath.Join(tmp, "SC"),
		"--wait-for-stages")
	time.Sleep(3 * time.Second)
	if conv.exited() {
		t.Fatalf("convert finished (%s) although no ingester runs", conv.state())
	}
	layers, _ := filepath.Glob(filepath.Join(store, mpRepo, ".layers", "*", "*", "layerfs"))
	flats, _ := filepath.Glob(filepath.Join(store, mpRepo, ".flat", "*", "*"))
	if len(layers)+len(flats) > 0 {
		t.Errorf("without an ingester: layers %q, flat dirs %q; want none", layers, flats)
	}

	servers["ingester"] = startServeProcess(t, "ingester", natsURL, store, filepath.Join(tmp, "S_ingester"))
	if !conv.expectExit0(t) {
		t.FailNow()
	}
	mpCheckPublicPaths(t, store, reg.Host, imgs)
	for _, s := range mpServices {
		if p := servers[s]; !p.exited() {
			p.stop(t, mpGracefulStop)
		} else {
			t.Errorf("%s exited during the conversion: %s", p.name, p.state())
		}
	}
}
