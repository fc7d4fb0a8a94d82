package relocator

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/relocate"
	"flatbed.dev/pkg/relocate/relocatetest"
)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// A resolved image is copied under the prefix with duffle's name, tag and digest kept, and
// image.relocated names the target with the digest the source has; a redelivery publishes
// the same event.
func TestRelocate(t *testing.T) {
	img, _ := random.Image(512, 2)
	srcHost, resolved := served(t, "team/app", "1", img)
	dstHost := registrytest.Serve(t, nil)
	digest := resolved.Digest
	flat := dstHost + "/mirror/team-app-" + md5hex(srcHost+"/team/app")
	tests := []struct {
		name       string
		wished     string
		noFlatten  bool
		wantTarget string
	}{
		{"by tag", "http://" + srcHost + "/team/app:1", false, flat + ":1@" + digest},
		{"by digest", "http://" + srcHost + "/team/app@" + digest, false, flat + "@" + digest},
		{"by tag and digest", "http://" + srcHost + "/team/app:1@" + digest, false, flat + ":1@" + digest},
		{"no flatten", "http://" + srcHost + "/team/app:1", true, dstHost + "/mirror/team/app:1@" + digest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := newService()
			job := relocateJob(tt.wished, "http://"+dstHost+"/mirror")
			job.RelocateNoFlatten = tt.noFlatten
			for attempt := 1; attempt <= 2; attempt++ {
				if err := handle(t, s, job, resolved, attempt); err != nil {
					t.Fatal(err)
				}
			}
			envs := b.Envelopes()
			if got := b.Types(); !slices.Equal(got, []string{events.ImageRelocatedType, events.ImageRelocatedType}) || envs[0].ID != envs[1].ID {
				t.Fatalf("published %v, want image.relocated twice with one id (a redelivery)", got)
			}
			out := eventstest.Decode[events.ImageRelocated](t, envs[0])
			if out.Target != tt.wantTarget || out.Image != resolved {
				t.Errorf("target %s, want %s", out.Target, tt.wantTarget)
			}
			if got := digestAt(t, out.Target); got.String() != digest {
				t.Errorf("the target serves %s, want %s", got, digest)
			}
			if got := testutil.ToFloat64(s.Metrics.Images.WithLabelValues("relocated")); got != 2 {
				t.Errorf("relocated count %v, want 2", got)
			}
		})
	}
}

// A wish that names an index, by digest or by a tag the resolver found an index under, gets
// the whole index relocated, every platform.
func TestRelocateIndex(t *testing.T) {
	idx, _ := random.Index(256, 1, 2)
	srcHost := registrytest.Serve(t, nil)
	dstHost := registrytest.Serve(t, nil)
	idxDigest := push(t, srcHost+"/team/multi:1", idx)
	im, _ := idx.IndexManifest()
	child, _ := idx.Image(im.Manifests[0].Digest)
	byTag := eventstest.Describe(t, child, srcHost, "team/multi", "1").Image
	byTag.IndexDigest, byTag.Platform = idxDigest.String(), "linux/amd64" // as the resolver records it
	tests := []struct {
		name     string
		wished   string
		resolved events.Image
	}{
		{"by digest", "http://" + srcHost + "/team/multi@" + idxDigest.String(), eventstest.Describe(t, child, srcHost, "team/multi", "").Image},
		{"by tag", "http://" + srcHost + "/team/multi:1", byTag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := newService()
			if err := handle(t, s, relocateJob(tt.wished, "http://"+dstHost+"/mirror"), tt.resolved, 1); err != nil {
				t.Fatal(err)
			}
			out := eventstest.Decode[events.ImageRelocated](t, b.Envelopes()[0])
			if !strings.HasSuffix(out.Target, "@"+idxDigest.String()) || digestAt(t, out.Target) != idxDigest {
				t.Errorf("target %s, want the index %s", out.Target, idxDigest)
			}
			repo, _, _ := strings.Cut(out.Target, "@")
			if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
				if got := digestAt(t, repo); got != idxDigest {
					t.Errorf("the target's tag names %s, want the index %s", got, idxDigest)
				}
				repo = repo[:i]
			}
			for _, m := range im.Manifests {
				if got := digestAt(t, repo+"@"+m.Digest.String()); got != m.Digest {
					t.Errorf("manifest %s of the index served as %s", m.Digest, got)
				}
			}
		})
	}
}

// A wish that does not ask for the relocated output is not the relocator's: nothing is
// copied or published.
func TestNotAskedFor(t *testing.T) {
	var c counting
	src := registrytest.Serve(t, c.wrap)
	img, _ := random.Image(256, 1)
	push(t, src+"/team/app:1", img)
	resolved := eventstest.Describe(t, img, src, "team/app", "1").Image
	before := c.n.Load()
	s, b := newService()
	if err := handle(t, s, eventstest.Job("http://"+src+"/team/app:1"), resolved, 1); err != nil {
		t.Fatal(err)
	}
	if len(b.Envelopes()) != 0 || c.n.Load() != before {
		t.Errorf("published %v and made %d registry requests for a wish without the relocated output", b.Types(), c.n.Load()-before)
	}
}

// What no new attempt can mend fails the wish at once (a permanent error the bus reports as
// image.failed), naming the image: a target that changes the digest, a source the registry
// does not have, a prefix that is not one.
func TestRelocateFailsForGood(t *testing.T) {
	img, _ := random.Image(256, 1)
	srcHost, resolved := served(t, "team/app", "1", img)
	rewriter := registrytest.Serve(t, relocatetest.RewriteManifests)
	dstHost := registrytest.Serve(t, nil)
	tests := []struct {
		name, wished, prefix string
		want                 error  // errors.Is, when not nil
		wantText             string // in the error
		result               string // the metric's label
	}{
		{"target rewrites the digest", "http://" + srcHost + "/team/app:1", "http://" + rewriter + "/mirror", relocate.ErrDigestChanged, srcHost + "/team/app:1", "digest_changed"},
		{"source missing", "http://" + srcHost + "/team/gone:1", "http://" + dstHost + "/mirror", nil, srcHost + "/team/gone:1", "failed"},
		{"prefix with a tag", "http://" + srcHost + "/team/app:1", dstHost + "/mirror:1", nil, "cannot have a tag or digest", "failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := newService()
			err := handle(t, s, relocateJob(tt.wished, tt.prefix), resolved, 1)
			if !events.IsPermanent(err) || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("Handle = %v; want a permanent error naming %q", err, tt.wantText)
			}
			if len(b.Envelopes()) != 0 {
				t.Errorf("published %v", b.Types())
			}
			if got := testutil.ToFloat64(s.Metrics.Images.WithLabelValues(tt.result)); got != 1 {
				t.Errorf("%s count %v, want 1", tt.result, got)
			}
			t.Log(err)
		})
	}
}
