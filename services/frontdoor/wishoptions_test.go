package frontdoor

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go"

	"flatbed.dev/events"
)

// lastSubmitted reads the job of the last wish.submitted in the stream.
func lastSubmitted(t *testing.T, d *door) events.Job {
	t.Helper()
	ctx := context.Background()
	st, err := d.b.JetStream().Stream(ctx, events.Stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(ctx, events.Subject(events.WishSubmittedType))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Parse(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	if err != nil {
		t.Fatal(err)
	}
	var in events.WishSubmitted
	if err := events.Decode(ev, &in); err != nil {
		t.Fatal(err)
	}
	if err := in.Validate(); err != nil {
		t.Fatalf("the published wish.submitted does not validate: %v", err)
	}
	return in.Job
}

// A wish made through the API asks for what a wish on the bus may: every platform (-m),
// convert again, no podman entry, and the relocated, lazy and exported outputs with their
// settings; the wish keeps them, so that they survive a restart and every submission of it
// (a registry's push of a new digest) asks for the same.
func TestWishOptions(t *testing.T) {
	reg := testRegistry(t, "apps/web:1", "apps/tool:2")
	dir := t.TempDir()
	d := openDoor(t, dir, nil)
	opts := WishOptions{MultiArch: true, ConvertAgain: true, SkipPodman: true,
		Outputs:        []string{events.OutputUnpacked, events.OutputThin, events.OutputRelocated, events.OutputLazy, events.OutputExported},
		RelocatePrefix: reg + "/mirror", RelocateNoFlatten: true,
		LazyImage: "http://" + reg + "/lazy/web:1", LazyReferrer: true, LazyPrioritized: []string{"/bin/sh"},
		ExportRemote: "dir:///srv/remote", ExportCompress: "zstd"}
	var created WishView
	code, raw := d.call(t, "POST", "/api/v1/wishes", testToken, WishRequest{Image: "http://" + reg + "/apps/web:1", CvmfsRepo: "unpacked.example.org",
		OutputFormat: "$(scheme)://$(registry)/thin/$(repository):$(tag)", WishOptions: opts}, &created)
	if code != http.StatusCreated {
		t.Fatalf("POST /api/v1/wishes: %d %s", code, raw)
	}
	want := opts
	want.LazyFormat = defaultLazyFormat
	if !reflect.DeepEqual(created.WishOptions, want) {
		t.Errorf("the wish keeps %+v, want %+v", created.WishOptions, want)
	}
	job := lastSubmitted(t, d)
	if !job.MultiArch || !job.ConvertAgain || !job.SkipPodman || !reflect.DeepEqual(job.Outputs, opts.Outputs) ||
		job.RelocatePrefix != opts.RelocatePrefix || !job.RelocateNoFlatten ||
		job.LazyImage != opts.LazyImage || job.LazyFormat != defaultLazyFormat || !job.LazyReferrer || !reflect.DeepEqual(job.LazyPrioritized, opts.LazyPrioritized) ||
		job.ExportRemote != opts.ExportRemote || job.ExportCompress != "zstd" || job.ThinImage != "http://"+reg+"/thin/apps/web:1" {
		t.Errorf("published job %+v", job)
	}
	d.close()

	d = openDoor(t, dir, nil)
	var one WishView
	if code, raw := d.call(t, "GET", "/api/v1/wishes/"+created.ID, testToken, nil, &one); code != http.StatusOK || !reflect.DeepEqual(one.WishOptions, want) {
		t.Fatalf("after a restart GET the wish: %d %s", code, raw)
	}
	sub := one.job().Job // what a webhook's resubmission publishes
	if !sub.MultiArch || !reflect.DeepEqual(sub.Outputs, opts.Outputs) || sub.LazyImage != opts.LazyImage || sub.ExportRemote != opts.ExportRemote {
		t.Errorf("a resubmission asks for %+v", sub)
	}

	// A relocation alone needs no repository and pushes no thin image.
	code, raw = d.call(t, "POST", "/api/v1/wishes", testToken, WishRequest{Image: "http://" + reg + "/apps/tool:2",
		WishOptions: WishOptions{Outputs: []string{events.OutputRelocated}, RelocatePrefix: reg + "/mirror"}}, &created)
	if code != http.StatusCreated {
		t.Fatalf("a relocation alone: %d %s", code, raw)
	}
	if job := lastSubmitted(t, d); job.CvmfsRepo != "" || job.ThinImage != "" || !reflect.DeepEqual(job.Outputs, []string{events.OutputRelocated}) {
		t.Errorf("a relocation alone published %+v", job)
	}

	for _, tc := range []struct {
		name string
		req  WishRequest
		code string
	}{
		{"thin image without the thin output", WishRequest{Image: "http://" + reg + "/apps/web:1", CvmfsRepo: "other.example.org", ThinImage: "http://" + reg + "/t:1",
			WishOptions: WishOptions{Outputs: []string{events.OutputUnpacked}}}, "invalid_output"},
		{"unpacked without a repository", WishRequest{Image: "http://" + reg + "/apps/web:1", SkipThin: true}, "invalid_cvmfs_repo"},
		{"an output flatbed does not make", WishRequest{Image: "http://" + reg + "/apps/web:1", WishOptions: WishOptions{Outputs: []string{"floppy"}}}, "invalid_wish"},
		{"lazy without its image", WishRequest{Image: "http://" + reg + "/apps/web:1", WishOptions: WishOptions{Outputs: []string{events.OutputLazy}}}, "invalid_wish"},
		{"a remote with credentials", WishRequest{Image: "http://" + reg + "/apps/web:1",
			WishOptions: WishOptions{Outputs: []string{events.OutputExported}, ExportRemote: "s3://key:secret@bucket/x"}}, "invalid_wish"},
		{"relocation settings without the output", WishRequest{Image: "http://" + reg + "/apps/web:1", CvmfsRepo: "other.example.org", SkipThin: true,
			WishOptions: WishOptions{RelocatePrefix: reg + "/mirror"}}, "invalid_wish"},
	} {
		var p Problem
		if code, raw := d.call(t, "POST", "/api/v1/wishes", testToken, tc.req, &p); code != http.StatusBadRequest || p.Code != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, code, raw, tc.code)
		}
	}
}
