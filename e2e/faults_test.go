package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"flatbed.dev/e2e/faultproxy"
	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/store"
)

// faultAttempts is --max-attempts in these tests: deliveries of one step before it fails.
// Registry faults do not use them up: they are retried within a delivery, for
// faultRegistryTimeout (--registry-timeout).
const faultAttempts = 3

const faultRegistryTimeout = "3s"

// imageFacts are the digests a fault test aims at and checks the store against.
type imageFacts struct {
	ref        string // repository:tag in the registry
	config     string
	layers     []string
	sizes      []int64
	raw        []byte // the manifest
	mediaType  string
	manifestRE string // path regexp of the manifest by tag
}

func factsOf(t *testing.T, n imagegen.Named) imageFacts {
	t.Helper()
	m, err := n.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := n.Image.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	f := imageFacts{ref: n.Ref(), config: m.Config.Digest.String(), raw: raw, mediaType: string(m.MediaType),
		manifestRE: "^/v2/" + regexp.QuoteMeta(n.Name) + "/manifests/" + regexp.QuoteMeta(n.Tag) + "$"}
	for _, l := range m.Layers {
		f.layers = append(f.layers, l.Digest.String())
		f.sizes = append(f.sizes, l.Size)
	}
	return f
}

func blobRE(repo, digest string) string {
	return "^/v2/" + regexp.QuoteMeta(repo) + "/blobs/" + regexp.QuoteMeta(digest) + "$"
}

// TestRegistryFaults converts demo/hello:1.0 through a fault-injecting proxy in front of the
// real registry, one fault at a time. A fault that lasts fewer requests than the retries
// allow ends in "converted"; one that lasts ends in exit 1 with a FAILED line that says what
// happened to which image or layer. Either way the store holds no temporary directory and
// nothing under a final name for what failed; and once the fault is gone the next run
// converts the image.
func TestRegistryFaults(t *testing.T) {
	// go-containerregistry's in-request retries wait 10, 20, 40 … ms instead of 1, 2, 4 … s.
	t.Setenv(registry.RetryBaseEnv, "10ms")
	// A registry that sends nothing for 1 s has stalled (2 min in production).
	t.Setenv(registry.StallTimeoutEnv, "1s")
	start := time.Now()
	reg := harness.StartRegistry(t)
	ctx := context.Background()
	demo := imagegen.Demo()
	var hello1, hello2 imagegen.Named
	for _, n := range demo {
		switch n.Ref() {
		case imagegen.DemoHello + ":1.0":
			hello1 = n
		case imagegen.DemoHello + ":2.0":
			hello2 = n
		}
	}
	if err := imagegen.Push(ctx, reg.Host, demo); err != nil {
		t.Fatal(err)
	}
	px, err := faultproxy.Start(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()

	one, two := factsOf(t, hello1), factsOf(t, hello2)
	base, app := one.layers[0], one.layers[1] // base is shared with 2.0; app is 1.0's own
	baseRE := blobRE(imagegen.DemoHello, base)
	baseSize := one.sizes[0]
	// A manifest whose blobs were never pushed: what a tag that moves while it is read, and
	// whose old blobs are deleted, looks like.
	gone, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	goneRaw, _ := gone.RawManifest()
	goneMT, _ := gone.MediaType()

	type outcome struct {
		exit    int
		msgs    []string       // substrings of the FAILED line
		msgRE   *regexp.Regexp // and a pattern it matches
		failed  []string       // layers that must not be in the store afterwards
		config  string         // converted: the config the public path must name
		noImage bool           // failed: no flat tree, no public path
	}
	failedImage := func(layers []string, msgs ...string) outcome {
		return outcome{exit: 1, msgs: msgs, failed: layers, noImage: true}
	}
	gaveUp := regexp.MustCompile(`gave up after \d+ failed tries in [0-9.]+m?s: the registry timeout \(--registry-timeout ` + faultRegistryTimeout + `\) ran out`)
	cases := []struct {
		name  string
		image string // repository:tag to convert; default demo/hello:1.0
		rules []faultproxy.Rule
		want  outcome
		check func(t *testing.T, rules []*faultproxy.Active, elapsed time.Duration)
		fix   func(t *testing.T) // after the faulty run; the rules are always cleared
	}{
		{
			name:  "manifest 503 twice",
			rules: []faultproxy.Rule{{Method: "GET", Path: one.manifestRE, Times: 2, Fault: faultproxy.Status(503)}},
			want:  outcome{exit: 0, config: one.config},
			check: func(t *testing.T, r []*faultproxy.Active, _ time.Duration) {
				if r[0].Applied() != 2 || r[0].Seen() < 3 {
					t.Errorf("manifest GETs: %d faulted of %d, want 2 faulted then a retry", r[0].Applied(), r[0].Seen())
				}
			},
		},
		{
			name:  "manifest 503 always",
			rules: []faultproxy.Rule{{Method: "GET", Path: one.manifestRE, Fault: faultproxy.Status(503)}},
			want: outcome{exit: 1, msgs: []string{"fetching the manifest of", "registry answered 503 Service Unavailable"}, msgRE: gaveUp,
				failed: one.layers, noImage: true},
		},
		{
			name:  "manifest 429 with Retry-After twice",
			rules: []faultproxy.Rule{{Method: "GET", Path: one.manifestRE, Times: 2, Fault: faultproxy.TooManyRequests(1)}},
			want:  outcome{exit: 0, config: one.config},
			check: func(t *testing.T, r []*faultproxy.Active, _ time.Duration) {
				at, passed := r[0].AppliedAt(), r[0].PassedAt()
				if len(at) != 2 || len(passed) == 0 {
					t.Fatalf("429s %d, then %d answered", len(at), len(passed))
				}
				// Two answers asked for 1 s each; the retries wait 10 ms without Retry-After.
				if gap := passed[0].Sub(at[0]); gap < 1900*time.Millisecond {
					t.Errorf("retried %s after the first 429; Retry-After asked for 1 s twice", gap)
				}
			},
		},
		{
			name:  "blob 503 always",
			rules: []faultproxy.Rule{{Method: "GET", Path: baseRE, Fault: faultproxy.Status(503)}},
			want: outcome{exit: 1, msgs: []string{"fetching layer " + base, "registry answered 503 Service Unavailable"}, msgRE: gaveUp,
				failed: []string{base}, noImage: true},
			check: func(t *testing.T, r []*faultproxy.Active, _ time.Duration) {
				// Retried within one delivery until the registry timeout: more than once, bounded.
				if got := r[0].Applied(); got < 3 || got > 100 {
					t.Errorf("%d blob GETs, want a few retries within %s", got, faultRegistryTimeout)
				}
			},
		},
		{
			name:  "blob reset mid-body once",
			rules: []faultproxy.Rule{{Method: "GET", Path: baseRE, Times: 1, Fault: faultproxy.Reset(baseSize / 2)}},
			want:  outcome{exit: 0, config: one.config},
		},
		{
			name:  "blob reset mid-body always",
			rules: []faultproxy.Rule{{Method: "GET", Path: baseRE, Fault: faultproxy.Reset(baseSize / 2)}},
			want: outcome{exit: 1, msgs: []string{fmt.Sprintf("the download of layer %s of", base), fmt.Sprintf("broke off after %d of %d bytes", baseSize/2, baseSize)},
				msgRE: gaveUp, failed: []string{base}, noImage: true},
			check: func(t *testing.T, r []*faultproxy.Active, _ time.Duration) {
				if got := r[0].Applied(); got < 3 {
					t.Errorf("%d blob GETs, want a few retries within %s", got, faultRegistryTimeout)
				}
			},
		},
		{
			name:  "blob truncated once",
			rules: []faultproxy.Rule{{Method: "GET", Path: baseRE, Times: 1, Fault: faultproxy.Truncate(baseSize - 10)}},
			want:  outcome{exit: 0, config: one.config},
		},
		{
			name:  "blob truncated always",
			rules: []faultproxy.Rule{{Method: "GET", Path: baseRE, Fault: faultproxy.Truncate(baseSize - 10)}},
			want: outcome{exit: 1, msgs: []string{fmt.Sprintf("broke off after %d of %d bytes", baseSize-10, baseSize), "closed the connection before the answer was complete"},
				msgRE: gaveUp, failed: []string{base}, noImage: true},
		},
		{
			name:  "blob corrupted once",
			rules: []faultproxy.Rule{{Method: "GET", Path: baseRE, Times: 1, Fault: faultproxy.Corrupt(baseSize / 2)}},
			want:  outcome{exit: 0, config: one.config},
		},
		{
			name:  "blob corrupted always",
			rules: []faultproxy.Rule{{Method: "GET", Path: baseRE, Fault: faultproxy.Corrupt(baseSize / 2)}},
			want: outcome{exit: 1, msgs: []string{fmt.Sprintf("layer %s of", base), fmt.Sprintf("does not match its digest (expected %s, got sha256:", base)},
				msgRE: gaveUp, failed: []string{base}, noImage: true},
		},
		{
			name:  "blob 404: layer deleted",
			rules: []faultproxy.Rule{{Method: "GET", Path: baseRE, Fault: faultproxy.NotFound("BLOB_UNKNOWN")}},
			want:  failedImage([]string{base}, fmt.Sprintf("layer %s of", base), "is not in the registry", "registry answered 404 Not Found (BLOB_UNKNOWN)"),
			check: func(t *testing.T, r []*faultproxy.Active, _ time.Duration) {
				if got := r[0].Applied(); got != 1 {
					t.Errorf("%d blob GETs for a 404, want 1: a permanent error is not retried", got)
				}
			},
		},
		{
			name:  "manifest changes between reads",
			rules: []faultproxy.Rule{{Method: "GET", Path: one.manifestRE, Times: 1, Fault: faultproxy.Serve(two.raw, two.mediaType)}},
			// The one manifest read names 2.0: everything published comes from it, nothing of 1.0.
			want: outcome{exit: 0, config: two.config, failed: []string{app}},
			check: func(t *testing.T, r []*faultproxy.Active, _ time.Duration) {
				if r[0].Applied() != 1 {
					t.Errorf("other manifest served %d times", r[0].Applied())
				}
			},
		},
		{
			name:  "manifest names blobs that are gone, then changes back",
			rules: []faultproxy.Rule{{Method: "GET", Path: one.manifestRE, Times: 1, Fault: faultproxy.Serve(goneRaw, string(goneMT))}},
			want:  outcome{exit: 0, config: one.config},
			check: func(t *testing.T, r []*faultproxy.Active, _ time.Duration) {
				if r[0].Applied() != 1 || r[0].Seen() < 2 {
					t.Errorf("manifest GETs: %d, want the stale one and a new read", r[0].Seen())
				}
			},
		},
		{
			name: "slow registry",
			rules: []faultproxy.Rule{
				{Path: one.manifestRE, Fault: faultproxy.Slow(600*time.Millisecond, 1<<20, 0)},
				{Method: "GET", Path: "/blobs/", Fault: faultproxy.Slow(200*time.Millisecond, 64, 10*time.Millisecond)},
			},
			want: outcome{exit: 0, config: one.config},
			check: func(t *testing.T, r []*faultproxy.Active, elapsed time.Duration) {
				if r[0].Applied() == 0 || r[1].Applied() < 3 || elapsed < 600*time.Millisecond {
					t.Errorf("slow answers: %d manifest, %d blobs in %s", r[0].Applied(), r[1].Applied(), elapsed)
				}
			},
		},
		{
			name: "blob stalls mid-body once",
			rules: []faultproxy.Rule{{Method: "GET", Path: baseRE, Times: 1,
				Fault: faultproxy.Slow(0, int(baseSize/2), 5*time.Second)}},
			want: outcome{exit: 0, config: one.config},
			check: func(t *testing.T, r []*faultproxy.Active, elapsed time.Duration) {
				if r[0].Applied() != 1 || r[0].Seen() < 2 || elapsed > 5*time.Second {
					t.Errorf("stalled GET, then %d more, in %s: want a retry after the 1 s stall timeout", r[0].Seen()-1, elapsed)
				}
			},
		},
		{
			name:  "404 for a missing tag",
			image: imagegen.DemoHello + ":late",
			rules: []faultproxy.Rule{{Path: `/manifests/late$`}}, // counts only
			want:  failedImage(nil, "not found", "has no tag late in repository demo/hello", "registry answered 404 Not Found (MANIFEST_UNKNOWN)"),
			check: func(t *testing.T, r []*faultproxy.Active, _ time.Duration) {
				if got := r[0].Seen(); got != 1 {
					t.Errorf("%d manifest requests for a missing tag, want 1: a 404 is not retried", got)
				}
			},
			fix: func(t *testing.T) {
				if err := imagegen.Push(ctx, reg.Host, []imagegen.Named{{Name: imagegen.DemoHello, Tag: "late", Image: hello1.Image}}); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			px.Clear()
			image := tc.image
			if image == "" {
				image = one.ref
			}
			repo, tag, _ := strings.Cut(image, ":")
			wl := mpWriteWishlist(t, px.Host, []imagegen.Named{{Name: repo, Tag: tag}})
			storeRoot := t.TempDir()
			st := store.New(filepath.Join(storeRoot, mpRepo))
			name := px.Host + "/" + image
			args := []string{"convert", wl, "--store-root", storeRoot, "--state-dir", t.TempDir(), "-i", "--max-attempts", fmt.Sprint(faultAttempts),
				"--registry-timeout", faultRegistryTimeout}

			var active []*faultproxy.Active
			for _, r := range tc.rules {
				active = append(active, px.Add(r))
			}
			began := time.Now()
			out, _ := runFlatbed(t, tc.want.exit, args...)
			elapsed := time.Since(began)
			px.Clear()
			t.Logf("%s (%s)", strings.TrimSpace(out), elapsed.Round(time.Millisecond))
			if t.Failed() {
				t.Logf("proxy log:\n%s", strings.Join(px.Log(), "\n"))
			}

			w := tc.want
			if w.exit == 0 {
				if !strings.Contains(out, "converted ") || strings.Contains(out, "FAILED") {
					t.Errorf("output:\n%s", out)
				}
				checkConverted(t, st, name, w.config)
			} else {
				line := failedLine(out, "http://"+name)
				if line == "" {
					t.Fatalf("no FAILED line for %s in:\n%s", name, out)
				}
				for _, m := range w.msgs {
					if !strings.Contains(line, m) {
						t.Errorf("FAILED line lacks %q:\n%s", m, line)
					}
				}
				if w.msgRE != nil && !w.msgRE.MatchString(line) {
					t.Errorf("FAILED line does not match %q:\n%s", w.msgRE, line)
				}
			}
			if w.noImage {
				if st.HasFlat(one.config) || st.HasFlat(two.config) {
					t.Error("a flat tree exists for an image that failed")
				}
				if _, err := os.Lstat(st.PublicPath(name)); !os.IsNotExist(err) {
					t.Errorf("the public path of an image that failed exists (%v)", err)
				}
			}
			for _, l := range w.failed {
				if _, err := os.Lstat(st.LayerDir(l)); !os.IsNotExist(err) {
					t.Errorf("layer %s is in the store (%v)", l, err)
				}
			}
			noDebris(t, st.Root)
			if tc.check != nil {
				tc.check(t, active, elapsed)
			}

			// The fault is gone: the next run converts.
			if tc.fix != nil {
				tc.fix(t)
			}
			out, _ = runFlatbed(t, 0, args...)
			if !strings.Contains(out, "converted ") {
				t.Errorf("run after the fault:\n%s", out)
			}
			// Even after "manifest changes between reads", the tag now names 1.0 again.
			checkConverted(t, st, name, one.config)
			noDebris(t, st.Root)
		})
	}
	t.Logf("%d faults in %s", len(cases), time.Since(start).Round(time.Second))
}

// failedLine returns the FAILED line of image in out.
func failedLine(out, image string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "FAILED") && strings.Contains(l, image+":") {
			return l
		}
	}
	return ""
}

// checkConverted checks that name is published with config: the recorded manifest, the
// flat tree and the public path.
func checkConverted(t *testing.T, st *store.Store, name, config string) {
	t.Helper()
	got, err := store.ReadManifestConfig(st.ManifestPath(name))
	if err != nil || got != config {
		t.Errorf("%s: recorded config %q (%v), want %s", name, got, err, config)
	}
	if !st.HasFlat(config) {
		t.Errorf("%s: no flat tree for %s", name, config)
	}
	target, err := filepath.EvalSymlinks(st.PublicPath(name))
	if err != nil {
		t.Errorf("%s: public path: %v", name, err)
		return
	}
	if want, _ := filepath.EvalSymlinks(st.FlatDir(config)); target != want {
		t.Errorf("%s: public path leads to %s, want %s", name, target, want)
	}
}

// noDebris fails the test for any temporary directory or file left in the store.
func noDebris(t *testing.T, root string) {
	t.Helper()
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("left in the store: %s", p)
		}
		if d.IsDir() && d.Name() == "layerfs" {
			return fs.SkipDir
		}
		return nil
	})
}
