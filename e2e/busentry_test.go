package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/events"
	"flatbed.dev/pkg/store"
)

// Anyone on the bus may publish. Events whose path-like fields aim outside the store, sent
// straight to the stream of a running pipeline, write nothing outside the store root, and
// each ends as conversion.failed for its wish.
func TestHostileEventsOnTheBusWriteNothingOutside(t *testing.T) {
	reg := harness.StartRegistry(t)
	tiny := tarOf(t, map[string]string{"etc/hello": "hello\n"})
	gz := gzipOf(t, tiny)
	cfg := configOf(t, []string{sha256Of(tiny)}, nil)
	rawImage(t, reg.Host, "plain/ok:v1", cfg, []rawLayer{{rawBlob{gz, types.DockerLayer}, int64(len(gz))}})

	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	storeRoot := filepath.Join(root, "store")
	for _, d := range []string{storeRoot, filepath.Join(root, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.RemoveAll(storeRoot) })
	before := treeState(t, tmp, storeRoot)

	natsURL, _ := startNATSServerProcess(t)
	serve := startChild(t, context.Background(), "serve all", flatbedBin, append([]string{"serve"}, append(mpServices,
		"--nats", natsURL, "--store-root", storeRoot, "--state-dir", t.TempDir(), "--metrics-addr", "127.0.0.1:0", "--max-attempts", "2", "--retry-base", "100ms")...)...)
	t.Cleanup(func() { serve.stop(t, mpGracefulStop) })
	waitServing(t, serve)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	image := "http://" + reg.Host + "/plain/ok:v1"
	good := events.Job{CorrelationID: "hostile-run", Image: image, CvmfsRepo: mpRepo, SkipThin: true, SubmittedAt: time.Now().UTC()}
	layerDigest := sha256Of(gz)
	ref := events.Image{Registry: reg.Host, Repository: "plain/ok", Tag: "v1", Name: reg.Host + "/plain/ok:v1",
		Digest: "sha256:" + strings.Repeat("0", 64), MediaType: string(types.DockerManifestSchema2), ConfigDigest: sha256Of(cfg), LayerCount: 1}
	lay := events.Layer{Digest: layerDigest, DiffID: sha256Of(tiny), MediaType: string(types.DockerLayer), Size: int64(len(gz))}

	type hostile struct {
		typ  string
		data func(job events.Job) any
		repo string
	}
	cases := map[string]hostile{}
	for i, repo := range []string{"../..", "../../etc", "/etc", mpRepo + "/../../../etc", "a/./b", "..", mpRepo + "/.."} {
		cases[fmt.Sprint("wish-repo-", i)] = hostile{events.WishSubmittedType, func(j events.Job) any { return events.WishSubmitted{Job: j} }, repo}
	}
	cases["layer-repo"] = hostile{events.LayerRequestedType, func(j events.Job) any {
		return events.LayerRequested{Job: j, Image: ref, Index: 0, Layer: lay}
	}, "../../etc"}
	cases["ingested-name"] = hostile{events.LayerIngestedType, func(j events.Job) any {
		r := ref
		r.Repository, r.Name = "../../../etc", reg.Host+"/../../../etc:v1"
		return events.LayerIngested{Job: j, Image: r, Index: 0, Layer: lay, Path: ".layers/x"}
	}, mpRepo}
	cases["ingested-digest"] = hostile{events.LayerIngestedType, func(j events.Job) any {
		r := ref
		r.ConfigDigest = "sha256:../../../../etc"
		return events.LayerIngested{Job: j, Image: r, Index: 0, Layer: lay}
	}, mpRepo}
	cases["flattened-undescribed"] = hostile{events.LayerIngestedType, func(j events.Job) any {
		// Well-formed, but names an image nobody resolved: the flattener has no description.
		return events.LayerIngested{Job: j, Image: ref, Index: 0, Layer: lay}
	}, mpRepo}
	cases["layer-digest"] = hostile{events.LayerRequestedType, func(j events.Job) any {
		l := lay
		l.Digest = "sha256:../../../etc/passwd"
		return events.LayerRequested{Job: j, Image: ref, Index: 0, Layer: l}
	}, mpRepo}

	for wish, c := range cases {
		job := good
		job.WishID, job.CvmfsRepo = wish, c.repo
		data, _ := json.Marshal(c.data(job))
		env, err := events.New(c.typ, "e2e/hostile", "hostile-"+wish, job, job.Image, json.RawMessage(data))
		if err != nil {
			t.Fatal(err)
		}
		m, err := env.Msg(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}

	// Not a CloudEvent at all, but naming its wish: dead-lettered and reported all the same.
	garbage := &nats.Msg{Subject: events.Subject(events.WishSubmittedType), Header: nats.Header{}, Data: []byte("{not json")}
	garbage.Header.Set("ce-wishid", "unreadable")
	if _, err := js.PublishMsg(ctx, garbage); err != nil {
		t.Fatal(err)
	}
	cases["unreadable"] = hostile{}

	failed := map[string]string{}
	cons, err := js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.Subject(events.ConversionFailedType)}})
	if err != nil {
		t.Fatal(err)
	}
	for len(failed) < len(cases) {
		m, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
		if err != nil {
			t.Fatalf("conversion.failed for %d of %d hostile events (%v): %v", len(failed), len(cases), err, failed)
		}
		ev, err := events.Parse(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		if err != nil {
			t.Fatal(err)
		}
		var f events.ConversionFailed
		if err := events.Decode(ev, &f); err != nil {
			t.Fatal(err)
		}
		failed[f.Job.WishID] = f.Error
	}
	for wish := range cases {
		if failed[wish] == "" {
			t.Errorf("%s: no conversion.failed with a reason", wish)
		}
	}
	t.Logf("reasons: %v", failed)
	if d := diffStates(before, treeState(t, tmp, storeRoot)); len(d) > 0 {
		t.Errorf("files outside the store changed:\n%s", strings.Join(d, "\n"))
	}
	if serve.exited() {
		t.Errorf("the pipeline died: %s", serve.state())
	}
}

// waitServing waits for a `flatbed serve` process's "serving" line.
func waitServing(t testing.TB, p *childProcess) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); serveMetricsURL(p.stderr) == ""; time.Sleep(50 * time.Millisecond) {
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("%s not serving: %s\n%s", p.name, p.state(), childLogTail(p.stderr))
		}
	}
}
