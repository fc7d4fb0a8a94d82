package resolver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/registry/registrytest"
)

var (
	linuxAMD64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// withHost makes the resolver run as if on host for one test.
func withHost(t *testing.T, host v1.Platform) {
	old := Host
	Host = host
	t.Cleanup(func() { Host = old })
}

// With -m every linux platform of the index is resolved (not windows, not the attestation
// entry): one image.resolved naming them all, each platform's description stored, the index
// stored, and every platform's layers requested.
func TestResolveMultiArch(t *testing.T) {
	withHost(t, linuxAMD64)
	host := registrytest.Serve(t, nil)
	imgs := pushIndex(t, host, "multi/arch:1", linuxARM64, linuxAMD64,
		v1.Platform{OS: "windows", Architecture: "amd64"}, v1.Platform{OS: "unknown", Architecture: "unknown"})
	s, b := newService(t)
	job := eventstest.Job("http://" + host + "/multi/arch:1")
	job.MultiArch = true
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
		t.Fatal(err)
	}
	res := b.OfType(events.ImageResolvedType)
	if len(res) != 1 {
		t.Fatalf("published %v, want one %s", b.Types(), events.ImageResolvedType)
	}
	r := eventstest.Decode[events.ImageResolved](t, res[0])
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range r.Platforms {
		got = append(got, p.Platform)
		want := eventstest.Describe(t, imgs[p.Platform], host, "multi/arch", "1")
		if p.Digest != want.Image.Digest || p.ConfigDigest != want.Image.ConfigDigest {
			t.Errorf("platform %s: digest %s config %s, want %s %s", p.Platform, p.Digest, p.ConfigDigest, want.Image.Digest, want.Image.ConfigDigest)
		}
		if _, err := s.Descriptions.Get(context.Background(), p); err != nil {
			t.Errorf("platform %s: %v", p.Platform, err)
		}
	}
	if strings.Join(got, " ") != "linux/arm64/v8 linux/amd64" {
		t.Errorf("platforms %v, want linux/arm64/v8 and linux/amd64 in index order", got)
	}
	if r.Image.Platform != "linux/amd64" {
		t.Errorf("Image is %s, want the host's platform linux/amd64", r.Image.Platform)
	}
	if _, err := s.Descriptions.(events.Indexes).GetIndex(context.Background(), r.Image.IndexDigest); err != nil {
		t.Errorf("the index was not stored: %v", err)
	}
	perPlatform := map[string]int{}
	for _, e := range b.OfType(events.LayerRequestedType) {
		perPlatform[eventstest.Decode[events.LayerRequested](t, e).Image.Platform]++
	}
	if perPlatform["linux/amd64"] != 1 || perPlatform["linux/arm64/v8"] != 1 || len(perPlatform) != 2 {
		t.Errorf("layers requested per platform: %v, want one for each linux platform", perPlatform)
	}
}

// Without -m only the host's platform is converted (arm64's v8 matched to an arm64 host),
// and the log names what was skipped.
func TestResolveIndexHostPlatform(t *testing.T) {
	withHost(t, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})
	host := registrytest.Serve(t, nil)
	pushIndex(t, host, "multi/arch:1", linuxAMD64, v1.Platform{OS: "linux", Architecture: "arm64"})
	s, b := newService(t)
	var logs bytes.Buffer
	s.Log = slog.New(slog.NewTextHandler(&logs, nil))
	job := eventstest.Job("http://" + host + "/multi/arch:1")
	if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
		t.Fatal(err)
	}
	r := eventstest.Decode[events.ImageResolved](t, b.OfType(events.ImageResolvedType)[0])
	if r.Image.Platform != "linux/arm64" || len(r.Platforms) != 0 {
		t.Errorf("resolved %s with platforms %v, want linux/arm64 alone", r.Image.Platform, r.Platforms)
	}
	if !strings.Contains(logs.String(), "skipped=linux/amd64") || !strings.Contains(logs.String(), "-m/--multi-arch") {
		t.Errorf("the log does not name the skipped platform:\n%s", logs.String())
	}
}

// An index without the host's platform fails for good, naming what it offers and -m.
func TestResolveIndexWithoutHostPlatform(t *testing.T) {
	withHost(t, v1.Platform{OS: "linux", Architecture: "s390x"})
	host := registrytest.Serve(t, nil)
	pushIndex(t, host, "multi/arch:1", linuxAMD64, linuxARM64)
	s, b := newService(t)
	checkRefused(t, s, b, eventstest.Job("http://"+host+"/multi/arch:1"), "linux/s390x", "linux/amd64, linux/arm64/v8", "-m/--multi-arch")
}

// An index wished by its digest resolves like a tag naming it: the name carries the index's
// digest, each platform its own manifest's.
func TestResolveIndexByDigest(t *testing.T) {
	withHost(t, linuxAMD64)
	host := registrytest.Serve(t, nil)
	pushIndex(t, host, "multi/arch:1", linuxAMD64, linuxARM64)
	idx := headDigest(t, host+"/multi/arch:1")
	for _, multi := range []bool{false, true} {
		s, b := newService(t)
		job := eventstest.Job("http://" + host + "/multi/arch@" + idx)
		job.MultiArch = multi
		if err := s.Handle(context.Background(), eventstest.Delivery(t, events.WishSubmittedType, job, events.WishSubmitted{Job: job}, 1)); err != nil {
			t.Fatalf("multi %v: %v", multi, err)
		}
		r := eventstest.Decode[events.ImageResolved](t, b.OfType(events.ImageResolvedType)[0])
		if err := r.Validate(); err != nil || r.Image.Name != host+"/multi/arch@"+idx || r.Image.IndexDigest != idx {
			t.Errorf("multi %v: resolved %s (index %s): %v", multi, r.Image.Name, r.Image.IndexDigest, err)
		}
	}
}
