package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fdOutputs is what the test reads of an image's state: its outputs.
type fdOutputs struct {
	ID      string `json:"id"`
	Image   string `json:"image"`
	State   string `json:"state"`
	Error   string `json:"error"`
	Outputs []struct {
		Name, State, Result string
	} `json:"outputs"`
}

// `flatbed wish add` through the front door asks for the outputs a wish on the bus may: a
// relocation alone (no repository), and the store with an export to a directory remote for a
// multi-arch (-m) wish; the services convert them, and the image states list each output
// done with where it went, which the relocated registry and the remote confirm.
func TestFrontdoorWishOutputs(t *testing.T) {
	imgs := smallImages(t, "fdout/img", 2)
	reg := mpPushImages(t, imgs)
	tokenFile := filepath.Join(t.TempDir(), "token")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", childFreePort(t))
	serve := startFrontdoorServe(t, "serve with the front door", t.TempDir(), t.TempDir(), httpAddr, tokenFile, "", childFreePort(t))
	defer serve.stop(t, mpGracefulStop)
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	api := frontdoorAPI{base: "http://" + httpAddr, token: strings.TrimSpace(string(raw))}
	cli := []string{"--url", api.base, "--token-file", tokenFile}

	relocated := "http://" + reg.Host + "/" + imgs[0].Ref()
	out, _ := runFlatbed(t, 0, append([]string{"wish", "add", relocated, "--output", "relocated", "--relocate-prefix", "http://" + reg.Host + "/mirror"}, cli...)...)
	if !strings.Contains(out, "-> relocated") {
		t.Errorf("wish add of a relocation: %q", out)
	}
	remote := "dir://" + t.TempDir() + "/remote"
	exported := "http://" + reg.Host + "/" + imgs[1].Ref()
	runFlatbed(t, 0, append([]string{"wish", "add", exported, mpRepo, "-i", "-m", "--output", "unpacked,exported", "--export-remote", remote}, cli...)...)

	states := map[string]fdOutputs{}
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline) && len(states) < 2; time.Sleep(300 * time.Millisecond) {
		var l struct {
			Images []fdOutputs `json:"images"`
		}
		if code := api.call(t, "GET", "/api/v1/images", nil, "", &l); code != http.StatusOK {
			t.Fatalf("GET /api/v1/images: %d", code)
		}
		for _, s := range l.Images {
			if s.State == "failed" {
				t.Fatalf("%s failed: %s", s.Image, s.Error)
			}
			if s.State == "done" {
				states[s.Image] = s
			}
		}
	}
	results := func(image string) map[string]string {
		s, ok := states[image]
		if !ok {
			t.Fatalf("%s not done within 3 minutes: %+v", image, states)
		}
		r := map[string]string{}
		for _, o := range s.Outputs {
			if o.State != "done" {
				t.Errorf("%s: output %s is %s", image, o.Name, o.State)
			}
			r[o.Name] = o.Result
		}
		return r
	}

	r := results(relocated)
	target := r["relocated"]
	if len(r) != 1 || !strings.HasPrefix(target, reg.Host+"/mirror/") {
		t.Fatalf("the relocation's outputs: %v, want relocated under %s/mirror", r, reg.Host)
	}
	repo, digest, _ := strings.Cut(target, "@")
	if got := rawDigest(t, repo); got != digest || got != rawDigest(t, reg.Host+"/"+imgs[0].Ref()) {
		t.Errorf("the relocated image %s has digest %s, its state says %s", repo, got, digest)
	}

	r = results(exported)
	if len(r) != 2 || r["unpacked"] != reg.Host+"/"+imgs[1].Ref() || !strings.HasPrefix(r["exported"], reg.Host+"/"+imgs[1].Ref()+"@sha256:") {
		t.Fatalf("the export's outputs: %v", r)
	}
	// The stages' own metrics count what happened, on the serve process's /metrics.
	resp, err := http.Get(serveMetricsURL(serve.stderr))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, series := range []string{
		`flatbed_resolver_images_total{result="resolved"} 2`,
		`flatbed_thinpusher_images_total{result="skipped"} 1`, // the export's store wish pushes no thin image (-i)
		`flatbed_notifier_conversions_total{result="converted"} 2`,
		`flatbed_notifier_wish_seconds_count{result="completed"} 2`,
	} {
		if !strings.Contains("\n"+string(page), "\n"+series+"\n") {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", page)
	}

	ref, _, _ := strings.Cut(r["exported"], "@")
	runFlatbed(t, 0, "import", remote, ref, "--to", reg.URL()+"/imported")
	name, _ := strings.CutPrefix(ref, reg.Host+"/")
	if got, want := rawDigest(t, reg.Host+"/imported/"+name), rawDigest(t, ref); got != want {
		t.Errorf("imported back from the remote: %s, want the source's %s", got, want)
	}
}
