package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
)

// frontdoorAPI is a client of the front door's HTTP API in a test.
type frontdoorAPI struct {
	base, token string
}

// call makes a request with the token (unless token is false) and decodes the JSON answer.
func (a frontdoorAPI) call(t testing.TB, method, path string, body []byte, contentType string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, raw)
		}
	}
	return resp.StatusCode
}

// fdWish is what the tests read of a wish and its image's state.
type fdWish struct {
	ID         string `json:"id"`
	Image      string `json:"image"`
	Source     string `json:"source"`
	Digest     string `json:"digest"`
	Submission string `json:"submission"`
	State      *struct {
		State      string `json:"state"`
		Error      string `json:"error"`
		PublicPath string `json:"public_path"`
	} `json:"state"`
}

func (a frontdoorAPI) wishes(t testing.TB) []fdWish {
	t.Helper()
	var wl struct {
		Wishes []fdWish `json:"wishes"`
	}
	if code := a.call(t, "GET", "/api/v1/wishes", nil, "", &wl); code != http.StatusOK {
		t.Fatalf("GET /api/v1/wishes: %d", code)
	}
	return wl.Wishes
}

// historyTypes lists the event types of an image's kept states, oldest first.
func (a frontdoorAPI) historyTypes(t testing.TB, id string) []string {
	t.Helper()
	var h struct {
		States []struct {
			Event struct {
				Type string `json:"type"`
			} `json:"event"`
		} `json:"states"`
	}
	if code := a.call(t, "GET", "/api/v1/images/"+id+"/history", nil, "", &h); code != http.StatusOK {
		t.Fatalf("GET the history of %s: %d", id, code)
	}
	var out []string
	for _, s := range h.States {
		out = append(out, s.Event.Type)
	}
	return out
}

// waitWish waits until the wish for image (as wished) ends in state want.
func (a frontdoorAPI) waitWish(t testing.TB, image, want string, bound time.Duration) fdWish {
	t.Helper()
	var last []fdWish
	for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		last = a.wishes(t)
		for _, w := range last {
			if w.Image == image && w.State != nil && w.State.State == want {
				return w
			}
		}
	}
	t.Fatalf("no wish for %s reached %s within %s: %+v", image, want, bound, last)
	return fdWish{}
}

// startFrontdoorServe starts `flatbed serve` (every service, the front door included) on an
// embedded NATS server whose state is in stateDir.
func startFrontdoorServe(t *testing.T, name, stateDir, storeRoot, httpAddr, tokenFile, wishlist string, natsPort int, more ...string) *childProcess {
	t.Helper()
	args := []string{"serve", "--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort), "--store-root", storeRoot, "--state-dir", stateDir,
		"--metrics-addr", "127.0.0.1:0", "--http-addr", httpAddr, "--token-file", tokenFile, "--retry-base", "200ms"}
	if wishlist != "" {
		args = append(args, "--webhook-wishlist", wishlist)
	}
	args = append(args, more...)
	p := startChild(t, context.Background(), name, flatbedBin, args...)
	waitServing(t, p)
	return p
}

// A push to the real distribution registry, configured (here) with a notification endpoint
// pointing at the front door, is converted without anyone running convert: the wish appears,
// the image is unpacked in the store, and the API shows it done with its conversion.completed.
// A repository outside the webhook wishlist is ignored; the registry delivering the push
// again, or the same tag pushed again, changes nothing. The CLI's `wish ls` and `status` read
// the same, requests without the token are refused, and after every process restarts the wish
// and its state are still there.
func TestFrontdoorRegistryWebhook(t *testing.T) {
	token := "e2e-" + strings.Repeat("t0ken", 6)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", childFreePort(t))
	api := frontdoorAPI{base: "http://" + httpAddr, token: token}
	reg := harness.StartRegistry(t, harness.WithConfig(fmt.Sprintf(`notifications:
  endpoints:
    - name: flatbed
      url: %s/webhooks/distribution
      headers:
        Authorization: [Bearer %s]
      timeout: 2s
      threshold: 3
      backoff: 500ms
      ignoredmediatypes:
        - application/octet-stream
`, api.base, token)))

	wl := filepath.Join(t.TempDir(), "webhooks.yaml")
	if err := os.WriteFile(wl, []byte(fmt.Sprintf("version: 1\nuser: e2e\ncvmfs_repo: '%s'\noutput_format: '$(scheme)://$(registry)/thin/$(repository):$(tag)'\ninput:\n  - 'http://%s/apps/*'\n",
		mpRepo, reg.Host)), 0o644); err != nil {
		t.Fatal(err)
	}
	stateDir, storeRoot := t.TempDir(), t.TempDir()
	natsPort := childFreePort(t)
	serve := startFrontdoorServe(t, "serve with the front door", stateDir, storeRoot, httpAddr, tokenFile, wl, natsPort)

	apps := smallImages(t, "apps/web", 1)
	other := smallImages(t, "other/tool", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := imagegen.Push(ctx, reg.Host, append(apps, other...)); err != nil {
		t.Fatal(err)
	}
	image := "http://" + reg.Host + "/" + apps[0].Ref()
	done := api.waitWish(t, image, "done", 2*time.Minute)
	if done.Source != "distribution" || done.Digest == "" {
		t.Errorf("the pushed image's wish: %+v", done)
	}
	public := filepath.Join(storeRoot, mpRepo, reg.Host, apps[0].Ref())
	if _, err := os.Stat(filepath.Join(public, "apps/web00/layer0.txt")); err != nil {
		t.Errorf("the pushed image is not unpacked in the store: %v", err)
	}
	for _, w := range api.wishes(t) {
		if strings.Contains(w.Image, "other/tool") {
			t.Errorf("a repository outside the webhook wishlist was wished: %+v", w)
		}
		if strings.Contains(w.Image, "/thin/") {
			t.Errorf("the thin image was wished: %+v", w)
		}
	}

	// The registry delivers the push again (as after a timeout), and the tag is pushed again.
	digest := done.Digest
	envelope := fmt.Sprintf(`{"events":[{"id":"again","action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":%q,"repository":"apps/web00","url":"http://%s/v2/apps/web00/manifests/%s","tag":"1"},"request":{"host":%q}}]}`,
		digest, reg.Host, digest, reg.Host)
	for range 2 {
		var res struct {
			Duplicate []string `json:"duplicate"`
		}
		if code := api.call(t, "POST", "/webhooks/distribution", []byte(envelope), "application/vnd.docker.distribution.events.v1+json", &res); code != 200 || len(res.Duplicate) != 1 {
			t.Errorf("the push delivered again: %d %+v, want a duplicate", code, res)
		}
	}
	if err := imagegen.Push(ctx, reg.Host, apps); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a second conversion would be on its way by now
	after := api.wishes(t)
	if len(after) != 1 || after[0].Submission != done.Submission {
		t.Errorf("after the repeated push: %+v, want the one wish, submitted once (%s)", after, done.Submission)
	}
	types := api.historyTypes(t, done.ID)
	if n := countOf(types, "conversion.completed"); n != 1 {
		t.Errorf("%d conversion.completed in the image's history %v, want 1", n, types)
	}
	if n := countOf(types, "wish.submitted"); n != 1 {
		t.Errorf("%d wish.submitted in the image's history %v, want 1", n, types)
	}

	// Without the token nothing but /healthz answers.
	anon := frontdoorAPI{base: api.base}
	if code := anon.call(t, "GET", "/api/v1/wishes", nil, "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/wishes without the token: %d, want 401", code)
	}
	if code := anon.call(t, "POST", "/webhooks/distribution", []byte(envelope), "application/vnd.docker.distribution.events.v1+json", nil); code != http.StatusUnauthorized {
		t.Errorf("a webhook without the token: %d, want 401", code)
	}

	// The CLI reads the same.
	ls, _ := runFlatbed(t, 0, "wish", "ls", "--url", api.base, "--token-file", tokenFile)
	if !strings.Contains(ls, done.ID) || !strings.Contains(ls, "done") {
		t.Errorf("flatbed wish ls:\n%s", ls)
	}
	st, _ := runFlatbed(t, 0, "status", "--url", api.base, "--token-file", tokenFile)
	if !strings.Contains(st, image) || !strings.Contains(st, "done") {
		t.Errorf("flatbed status:\n%s", st)
	}

	// Every process restarts: the wish and its state are still there.
	serve.stop(t, mpGracefulStop)
	serve = startFrontdoorServe(t, "serve again", stateDir, storeRoot, httpAddr, tokenFile, wl, natsPort)
	again := api.wishes(t)
	if len(again) != 1 || again[0].ID != done.ID || again[0].State == nil || again[0].State.State != "done" {
		t.Errorf("after a restart: %+v", again)
	}
	serve.stop(t, mpGracefulStop)
}

// `flatbed wish add` wishes an image through the front door, checked as add-desiderata did;
// the pipeline converts it, and `wish rm` withdraws it. The result is posted (--notify-url)
// as a binary-mode CloudEvent (read and validated with the CloudEvents SDK) to a receiver
// that is down at first, once.
func TestFrontdoorWishCLI(t *testing.T) {
	imgs := smallImages(t, "cli/img", 2)
	reg := mpPushImages(t, imgs)
	tokenFile := filepath.Join(t.TempDir(), "token")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", childFreePort(t))
	hookAddr := fmt.Sprintf("127.0.0.1:%d", childFreePort(t)) // nothing listens yet
	serve := startFrontdoorServe(t, "serve with the front door", t.TempDir(), t.TempDir(), httpAddr, tokenFile, "", childFreePort(t),
		"--notify-url", "http://"+hookAddr+"/hook", "--notify-mode", "binary")
	raw, err := os.ReadFile(tokenFile) // made by serve
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the token file serve made: %v %v, want mode 0600", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(serve.stderr); bytes.Contains(b, bytes.TrimSpace(raw)) {
		t.Error("serve logged the token")
	}
	api := frontdoorAPI{base: "http://" + httpAddr, token: strings.TrimSpace(string(raw))}
	cli := []string{"--url", api.base, "--token-file", tokenFile}

	image := "http://" + reg.Host + "/" + imgs[0].Ref()
	out, _ := runFlatbed(t, 0, append([]string{"wish", "add", image, mpRepo, "-i"}, cli...)...)
	if !strings.HasPrefix(out, "wished ") {
		t.Errorf("wish add: %q", out)
	}
	_, stderr := runFlatbed(t, 1, append([]string{"wish", "add", image, mpRepo, "-i"}, cli...)...)
	if !strings.Contains(stderr, "wished already") {
		t.Errorf("a duplicate wish: %s", stderr)
	}
	_, stderr = runFlatbed(t, 1, append([]string{"wish", "add", "http://" + reg.Host + "/cli/none:1", mpRepo, "-i"}, cli...)...)
	if !strings.Contains(stderr, "cannot be read") {
		t.Errorf("an unreachable image: %s", stderr)
	}
	_, stderr = runFlatbed(t, 1, append([]string{"wish", "add", image, mpRepo, "--thin-image", "not an image"}, cli...)...)
	if !strings.Contains(stderr, "thin image") {
		t.Errorf("an output that does not parse: %s", stderr)
	}
	w := api.waitWish(t, image, "done", 2*time.Minute)
	var mu sync.Mutex
	posted := map[string]int{}
	ln, err := net.Listen("tcp", hookAddr)
	if err != nil {
		t.Fatal(err)
	}
	hook := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		// Read as any CloudEvents receiver would, with the SDK, in binary mode.
		ev, err := binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
		switch {
		case err != nil:
			posted["unreadable: "+err.Error()]++
		case ev.Validate() != nil:
			posted["invalid: "+ev.Validate().Error()]++
		case r.Header.Get("Ce-Id") == "":
			posted["not binary mode: "+r.Header.Get("Content-Type")]++
		case ev.Type() == "dev.flatbed.conversion.completed" && strings.Contains(string(ev.Data()), image):
			posted[ev.ID()]++
		default:
			posted["unexpected: "+ev.Type()]++
		}
		rw.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = hook.Serve(ln) }()
	defer hook.Close()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		mu.Lock()
		n := len(posted)
		mu.Unlock()
		if n > 0 {
			break
		}
	}
	time.Sleep(time.Second)
	mu.Lock()
	if len(posted) != 1 {
		t.Errorf("the receiver got %v, want one conversion.completed, once", posted)
	}
	for id, n := range posted {
		if n != 1 {
			t.Errorf("%s posted %d times", id, n)
		}
	}
	mu.Unlock()
	if _, err := os.Stat(filepath.Join(serveStore(t, serve), mpRepo, reg.Host, imgs[0].Ref())); err != nil {
		t.Errorf("not in the store: %v", err)
	}
	runFlatbed(t, 0, append([]string{"wish", "rm", image, "--cvmfs-repo", mpRepo}, cli...)...)
	if ws := api.wishes(t); len(ws) != 0 {
		t.Errorf("after wish rm: %+v", ws)
	}
	runFlatbed(t, 1, append([]string{"wish", "rm", w.ID}, cli...)...)
	serve.stop(t, mpGracefulStop)
}

// serveStore is the --store-root of a serve process.
func serveStore(t testing.TB, p *childProcess) string {
	t.Helper()
	for i, a := range p.cmd.Args {
		if a == "--store-root" && i+1 < len(p.cmd.Args) {
			return p.cmd.Args[i+1]
		}
	}
	t.Fatalf("%s has no --store-root", p.name)
	return ""
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// Harbor's payloads, default and CloudEvents (the fixtures of services/frontdoor, built from
// Harbor's documentation, naming images of a real registry), each convert the image they
// name without anyone running convert; the repository outside the webhook wishlist is
// ignored.
func TestFrontdoorHarborWebhooks(t *testing.T) {
	base := smallImages(t, "harbor/img", 2)
	imgs := []imagegen.Named{
		{Name: "library/alpine", Tag: "3.17", Image: base[0].Image},
		{Name: "library/nginx", Tag: "1.25", Image: base[1].Image},
		{Name: "private/tool", Tag: "v1", Image: base[0].Image},
	}
	reg := mpPushImages(t, imgs)
	tokenFile := filepath.Join(t.TempDir(), "token")
	wl := filepath.Join(t.TempDir(), "webhooks.yaml")
	if err := os.WriteFile(wl, []byte(fmt.Sprintf("version: 1\ncvmfs_repo: '%s'\ninput:\n  - 'http://%s/library/*'\n", mpRepo, reg.Host)), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", childFreePort(t))
	storeRoot := t.TempDir()
	serve := startFrontdoorServe(t, "serve with the front door", t.TempDir(), storeRoot, httpAddr, tokenFile, wl, childFreePort(t))
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	api := frontdoorAPI{base: "http://" + httpAddr, token: strings.TrimSpace(string(raw))}
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "services", "frontdoor", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		// The documentation's digests become those of the images pushed here: the wish names the
		// manifest the webhook says was pushed.
		for fake, img := range map[string]v1.Image{
			"sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4": imgs[0].Image,
			"sha256:3f1e1b9e9c1d0ae8b2c8d6a4f5e7c9b1a3d5f7e9c1b3a5d7f9e1c3b5a7d9f1e3": imgs[1].Image,
		} {
			d, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.ReplaceAll(b, []byte(fake), []byte(d.String()))
		}
		return bytes.ReplaceAll(b, []byte("harbor.example.com"), []byte(reg.Host))
	}
	for _, f := range []struct{ file, contentType string }{
		{"harbor-default-push.json", "application/json"},
		{"harbor-cloudevents-push.json", "application/cloudevents+json"},
		{"harbor-default-outside.json", "application/json"},
	} {
		if code := api.call(t, "POST", "/webhooks/harbor", fixture(f.file), f.contentType, nil); code != http.StatusOK {
			t.Fatalf("POST %s: %d", f.file, code)
		}
	}
	for i, img := range imgs[:2] {
		image := "http://" + reg.Host + "/" + img.Ref()
		w := api.waitWish(t, image, "done", 2*time.Minute)
		if w.Source != "harbor" {
			t.Errorf("%s: source %q", image, w.Source)
		}
		if n := countOf(api.historyTypes(t, w.ID), "conversion.completed"); n != 1 {
			t.Errorf("%s: %d conversion.completed", image, n)
		}
		if _, err := os.Stat(filepath.Join(storeRoot, mpRepo, reg.Host, img.Ref(), base[i].Name, "layer0.txt")); err != nil {
			t.Errorf("%s is not unpacked: %v", image, err)
		}
	}
	if ws := api.wishes(t); len(ws) != 2 {
		t.Errorf("wishes: %+v, want the two under library/", ws)
	}
	serve.stop(t, mpGracefulStop)
}
