package e2e

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/store"
)

// writeFormatWishlist is mpWriteWishlist's wishlist with another output_format.
func writeFormatWishlist(t *testing.T, host, format string, imgs []imagegen.Named) string {
	t.Helper()
	p := mpWriteWishlist(t, host, imgs)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	const theirs = "output_format: '$(scheme)://$(registry)/thin/$(repository):$(tag)'"
	if !strings.Contains(string(b), theirs) {
		t.Fatalf("%s has no %s line to replace:\n%s", p, theirs, b)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), theirs, "output_format: '"+format+"'", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// changedFiles lists what differs between two snapshots of a tree.
func changedFiles(before, after map[string]fileState) []string {
	var out []string
	for p, s := range after {
		if b, ok := before[p]; !ok {
			out = append(out, "new "+p)
		} else if b != s {
			out = append(out, "changed "+p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			out = append(out, "gone "+p)
		}
	}
	sort.Strings(out)
	return out
}

// thinRequests counts the manifest PUTs and HEADs the registry was asked for repositories
// under prefix, and the blob GETs for the others (what unpacking fetches).
func thinRequests(reqs []harness.Request, prefix string) (puts, heads, sourceBlobGets int) {
	for _, q := range reqs {
		m := manifestURI.FindStringSubmatch(q.URI)
		switch {
		case m != nil && strings.HasPrefix(m[1], prefix) && q.Method == "PUT":
			puts++
		case m != nil && strings.HasPrefix(m[1], prefix) && q.Method == "HEAD":
			heads++
		case q.Method == "GET" && strings.Contains(q.URI, "/blobs/") && !strings.HasPrefix(q.URI, "/v2/"+prefix):
			sourceBlobGets++
		}
	}
	return puts, heads, sourceBlobGets
}

// Issue 10, done when 3: images already converted, converted again with a new output_format,
// get their thin images pushed without anything unpacked again (no layer fetched, no
// conversion line, the store untouched), even by a fresh process with a new state directory
// (the description comes from the store's .metadata); converted again with that same
// output_format, nothing is pushed: the target already holds the very thin image (one HEAD).
func TestNewOutputFormatPushesThinImagesOfConvertedImages(t *testing.T) {
	imgs := smallImages(t, "thinrepush/img", 2)
	reg := mpPushImages(t, imgs)
	storeRoot := t.TempDir()
	repo := filepath.Join(storeRoot, mpRepo)

	first := writeFormatWishlist(t, reg.Host, "$(scheme)://$(registry)/thin-a/$(repository):$(tag)", imgs)
	out, _ := runFlatbed(t, 0, "convert", first, "--store-root", storeRoot, "--state-dir", t.TempDir())
	if c := strings.Count(out, "converted "); c != len(imgs) || strings.Contains(out, "already converted") {
		t.Fatalf("first run: want %d images converted:\n%s", len(imgs), out)
	}
	for _, img := range imgs {
		harness.SkopeoInspectRaw(t, reg.Host+"/thin-a/"+img.Ref())
	}
	before := snapshot(t, repo)

	// A new output_format, a new process with a state directory of its own.
	second := writeFormatWishlist(t, reg.Host, "$(scheme)://$(registry)/thin-b/$(repository):$(tag)", imgs)
	notif := filepath.Join(t.TempDir(), "notifications.jsonl")
	seen := len(reg.RequestLog(t))
	stateDir := t.TempDir()
	args := []string{"convert", second, "--store-root", storeRoot, "--state-dir", stateDir, "-n", notif}
	out, stderr := runFlatbed(t, 0, args...)
	if c := strings.Count(out, "already converted "); c != len(imgs) {
		t.Fatalf("new output_format: %d images already converted, want %d:\n%s\n%s", c, len(imgs), out, lastLines(stderr, 30))
	}
	puts, _, blobGets := thinRequests(reg.RequestLog(t)[seen:], "thin-b/")
	if puts != len(imgs) {
		t.Errorf("new output_format: %d thin manifests pushed, want %d", puts, len(imgs))
	}
	if blobGets != 0 {
		t.Errorf("new output_format: %d blobs of the images fetched, want none (nothing is unpacked again)", blobGets)
	}
	for _, img := range imgs {
		ti := readThin(t, reg.Host+"/thin-b/"+img.Ref())
		if want := "http://" + reg.Host + "/" + img.Ref(); ti.Origin != want {
			t.Errorf("%s: thin.json origin %q, want %q", img.Ref(), ti.Origin, want)
		}
		layers, _ := img.Image.Layers()
		if len(ti.Layers) != len(layers) {
			t.Fatalf("%s: thin.json has %d layers, want %d", img.Ref(), len(ti.Layers), len(layers))
		}
		st := store.New(repo)
		for i, l := range layers {
			d, _ := l.Digest()
			if ti.Layers[i].Digest != d.Hex {
				t.Errorf("%s: thin.json layer %d is %s, want %s", img.Ref(), i, ti.Layers[i].Digest, d.Hex)
			}
			if _, err := os.Stat(st.LayerFS(d.String())); err != nil {
				t.Errorf("%s: thin.json names layer %s, not in the store: %v", img.Ref(), d.Hex, err)
			}
		}
	}
	if diff := changedFiles(before, snapshot(t, repo)); len(diff) > 0 {
		t.Errorf("the store changed though everything was converted already:\n%s", strings.Join(diff, "\n"))
	}
	lines, err := os.ReadFile(notif)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"start_layer_conversion", "start_flat_conversion", "publish_flat_image"} {
		if strings.Contains(string(lines), `"`+a+`"`) {
			t.Errorf("notification file has %s lines: something was converted again:\n%s", a, lines)
		}
	}

	// The same output_format again: the target holds the thin images already.
	seen = len(reg.RequestLog(t))
	out, _ = runFlatbed(t, 0, args...)
	if c := strings.Count(out, "already converted "); c != len(imgs) {
		t.Fatalf("same output_format: %d images already converted, want %d:\n%s", c, len(imgs), out)
	}
	puts, heads, blobGets := thinRequests(reg.RequestLog(t)[seen:], "thin-b/")
	if puts != 0 || heads != len(imgs) || blobGets != 0 {
		t.Errorf("same output_format: %d thin manifests pushed (want 0), %d HEADs of them (want %d), %d blobs fetched (want 0)",
			puts, heads, len(imgs), blobGets)
	}
	if diff := changedFiles(before, snapshot(t, repo)); len(diff) > 0 {
		t.Errorf("the store changed on the third run:\n%s", strings.Join(diff, "\n"))
	}
}
