package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The status page in headless Chromium (Debian's chromium, driven by chromedp): signed in
// with the token, it shows a wish pending while no stage runs, then done once the pipeline
// starts, without a reload (server-sent events); and an image whose manifest went away
// between the wish and the resolver as failed, with its reason.
func TestFrontdoorStatusPageInBrowser(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if deployCIRequiresTools() {
			t.Fatalf("chromium is not installed (scripts/install-test-deps.sh installs it): %v", err)
		}
		t.Skipf("chromium is not installed (apt-get install chromium); skipping (CI=true makes this a failure)")
	}
	imgs := smallImages(t, "page/img", 2)
	reg := mpPushImages(t, imgs)
	tokenFile := filepath.Join(t.TempDir(), "token")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", childFreePort(t))
	natsPort := childFreePort(t)
	storeRoot := t.TempDir()
	// The front door alone: wishes wait for the stages.
	front := startFrontdoorServe(t, "serve frontdoor", t.TempDir(), storeRoot, httpAddr, tokenFile, "", natsPort, "frontdoor")
	raw, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(raw))
	api := frontdoorAPI{base: "http://" + httpAddr, token: token}
	cli := []string{"--url", api.base, "--token-file", tokenFile}
	good := "http://" + reg.Host + "/" + imgs[0].Ref()
	gone := "http://" + reg.Host + "/" + imgs[1].Ref()
	runFlatbed(t, 0, append([]string{"wish", "add", good, mpRepo, "-i"}, cli...)...)
	runFlatbed(t, 0, append([]string{"wish", "add", gone, mpRepo, "-i"}, cli...)...)
	// The second image's manifest goes away before any stage reads it.
	ref, err := name.ParseReference(reg.Host+"/"+imgs[1].Ref(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref.Context().Digest(desc.Digest.String())); err != nil {
		t.Fatalf("deleting %s: %v", ref, err)
	}
	var goodID, goneID string
	for _, w := range api.wishes(t) {
		switch w.Image {
		case good:
			goodID = w.ID
		case gone:
			goneID = w.ID
		}
	}
	if goodID == "" || goneID == "" {
		t.Fatalf("wishes: %+v", api.wishes(t))
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Flag("headless", true),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()

	wishRow := func(id, state string) chromedp.CSS {
		return chromedp.CSS(fmt.Sprintf(`#wish-%s[data-state="%s"]`, id, state))
	}
	imageRow := func(id, state string) chromedp.CSS {
		return chromedp.CSS(fmt.Sprintf(`#image-%s[data-state="%s"]`, id, state))
	}
	// /status sends the browser to /login; the token signs it in.
	if err := chromedp.Do(ctx, chromedp.Navigate(api.base+"/status"), chromedp.WaitVisible(chromedp.CSS(`#token`))); err != nil {
		t.Fatalf("opening the status page: %v", err)
	}
	if loginURL, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasSuffix(loginURL, "/login") {
		t.Errorf("the status page without the token went to %q (%v), want /login", loginURL, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`#token`), token),
		chromedp.Click(chromedp.CSS(`#signin`)),
		chromedp.WaitVisible(wishRow(goodID, "pending")),
	); err != nil {
		t.Fatalf("signing in and seeing the wish pending: %v", err)
	}
	if title, err := chromedp.Run(ctx, chromedp.Title()); err != nil || title != "flatbed status" {
		t.Errorf("page title %q (%v)", title, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.flatbedMarker = "same page"`)); err != nil {
		t.Fatal(err)
	}

	// The stages start in another process: the page follows without a reload.
	stages := startChild(t, context.Background(), "serve the stages", flatbedBin, "serve", "resolver", "ingester", "flattener", "thinpusher", "notifier",
		"--nats", fmt.Sprintf("nats://127.0.0.1:%d", natsPort), "--store-root", storeRoot, "--state-dir", t.TempDir(), "--metrics-addr", "127.0.0.1:0")
	waitServing(t, stages)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(wishRow(goodID, "done")), chromedp.WaitVisible(imageRow(goneID, "failed"))); err != nil {
		html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("body")))
		t.Fatalf("waiting for done and failed on the page: %v\n%s", err, html)
	}
	goodState, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#image-`+goodID+` td.state`)))
	if err != nil || goodState != "done" {
		t.Errorf("the converted image shows %q (%v)", goodState, err)
	}
	goneError, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#image-`+goneID+` td.error`)))
	if err != nil || !strings.Contains(goneError, "resolver") || !strings.Contains(strings.ToLower(goneError), "manifest") {
		t.Errorf("the failed image shows the reason %q (%v), want the resolver's word on its manifest", goneError, err)
	}
	if still, err := chromedp.Run(ctx, chromedp.Evaluate[string](`window.flatbedMarker || "reloaded"`)); err != nil || still != "same page" {
		t.Errorf("the page reloaded (%q, %v): the states should arrive by server-sent events", still, err)
	}
	// What the page shows is what the API says.
	if code := api.call(t, "GET", "/api/v1/images/"+goneID, nil, "", nil); code != http.StatusOK {
		t.Errorf("GET the failed image: %d", code)
	}
	stages.stop(t, mpGracefulStop)
	front.stop(t, mpGracefulStop)
}
