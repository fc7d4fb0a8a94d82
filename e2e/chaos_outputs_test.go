package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"flatbed.dev/e2e/harness"
)

// chaosOutputServices are the services the relocate and export outputs go through.
var chaosOutputServices = []string{"resolver", "relocator", "exporter", "notifier"}

// TestOutputsSurviveRandomSIGKILLs relocates and exports the same images at once, every
// service its own process, while a random one of them is killed with SIGKILL at random
// moments (at least 8 times) and restarted. Both commands must succeed, every relocated image
// keep its digest, the remote verify without a problem and every exported image import back
// with its digest: a kill may cost time, never an image or a corrupt copy.
func TestOutputsSurviveRandomSIGKILLs(t *testing.T) {
	imgs := chaosImages(t)
	reg := mpPushImages(t, imgs)
	dst := harness.StartRegistry(t)
	remote := "dir://" + t.TempDir() + "/remote"

	natsURL, _ := startNATSServerProcess(t)
	store := t.TempDir()
	procs := map[string]*childProcess{}
	for _, s := range chaosOutputServices {
		procs[s] = startServeProcess(t, s, natsURL, store, t.TempDir())
	}
	var refs []string
	for _, im := range imgs {
		refs = append(refs, "http://"+reg.Host+"/"+im.Name+":"+im.Tag)
	}
	mapping := filepath.Join(t.TempDir(), "mapping.json")
	ctx, cancel := context.WithTimeout(context.Background(), mpConvertTimeout)
	defer cancel()
	common := []string{"--nats", natsURL, "--store-root", store, "--timeout", mpConvertOwnTimeout}
	reloc := startChild(t, ctx, "relocate", flatbedBin,
		append(append([]string{"relocate", "--repository-prefix", dst.URL() + "/mirror", "--mapping", mapping}, common...), refs...)...)
	export := startChild(t, ctx, "export", flatbedBin, append(append([]string{"export", remote}, common...), refs...)...)

	killRandomly(t, procs, chaosOutputServices, 8, 3*time.Minute, func() bool { return reloc.exited() && export.exited() },
		func(s string) *childProcess { return startServeProcess(t, s, natsURL, store, t.TempDir()) })
	if !reloc.expectExit0(t) {
		t.Errorf("relocate output:\n%s", childLogTail(reloc.stdout))
	}
	if !export.expectExit0(t) {
		t.Errorf("export output:\n%s", childLogTail(export.stdout))
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every relocated image has the source's digest.
	b, err := os.ReadFile(mapping)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("mapping file %s: %v", b, err)
	}
	if len(m) != len(imgs) {
		t.Errorf("mapping has %d images, want %d", len(m), len(imgs))
	}
	for _, ref := range refs {
		target, ok := m[ref]
		if !ok {
			t.Errorf("%s is not in the mapping", ref)
			continue
		}
		want := rawDigest(t, strings.TrimPrefix(ref, "http://"))
		tagged, pinned, _ := strings.Cut(target, "@") // the mapping names both: repo:tag@digest
		if pinned != want {
			t.Errorf("mapping[%s] = %s, want the source's digest %s", ref, target, want)
		}
		if got := rawDigest(t, tagged); got != want {
			t.Errorf("%s relocated to %s with digest %s, the source's is %s", ref, tagged, got, want)
		}
	}

	// The remote verifies, and every image imports back with its digest.
	out, _ := runFlatbed(t, 0, "verify-remote", remote)
	if !strings.Contains(out, " 0 problem(s)") {
		t.Errorf("verify-remote: %s", out)
	}
	back := harness.StartRegistry(t)
	args := []string{"import", remote}
	for _, ref := range refs {
		args = append(args, strings.TrimPrefix(ref, "http://"))
	}
	runFlatbed(t, 0, append(args, "--to", back.URL()+"/back")...)
	for _, im := range imgs {
		name := im.Name + ":" + im.Tag
		if got, want := rawDigest(t, back.Host+"/back/"+name), rawDigest(t, reg.Host+"/"+name); got != want {
			t.Errorf("%s exported and imported back is %s, the source's is %s", name, got, want)
		}
	}
	// One result for each wish: a relocation and an export per image.
	checkOneResultPerWish(t, natsURL, 2*len(imgs))
	for _, s := range chaosOutputServices {
		procs[s].stop(t, mpGracefulStop)
	}
}
