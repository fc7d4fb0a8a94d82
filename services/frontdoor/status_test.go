package frontdoor

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"flatbed.dev/events"
)

// The status page signs a browser in with the token (kept in a cookie that opens the page,
// never the API), renders the wishes and images with their states and errors, and its event
// stream sends the tables again when a state changes.
func TestStatusPage(t *testing.T) {
	d := openDoor(t, t.TempDir(), nil)
	job := events.Job{WishID: "w1", CorrelationID: "run", Image: "https://registry.example.org/apps/web:1", CvmfsRepo: "unpacked.example.org", SubmittedAt: time.Now().UTC()}
	if err := d.s.HandleState(context.Background(), delivery(t, events.WishSubmittedType, "s1", events.WishSubmitted{Job: job})); err != nil {
		t.Fatal(err)
	}
	key := Key(job.CvmfsRepo, job.Image)

	// Signing in.
	resp, err := noRedirects.PostForm(d.srv.URL+"/login", url.Values{"token": {"wrong-token-wrong-token"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("a wrong token: %d %v", resp.StatusCode, resp.Cookies())
	}
	resp, err = noRedirects.PostForm(d.srv.URL+"/login", url.Values{"token": {testToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/status" || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly {
		t.Fatalf("signing in: %d %v", resp.StatusCode, resp.Cookies())
	}
	cookie := resp.Cookies()[0]
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", d.srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() && !strings.Contains(path, "events") {
			b.WriteString(sc.Text() + "\n")
		}
		return resp, b.String()
	}
	resp, page := get("/status")
	if resp.StatusCode != 200 || !strings.Contains(page, `id="image-`+key+`" data-state="pending"`) || !strings.Contains(page, job.Image) {
		t.Fatalf("the status page (%d):\n%s", resp.StatusCode, page)
	}
	if resp, _ := get("/api/v1/wishes"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the cookie opened the API: %d", resp.StatusCode)
	}

	// The event stream: the tables at once, and again after a failure.
	req, _ := http.NewRequest("GET", d.srv.URL+"/status/events", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err = http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("events: content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() string {
		var b strings.Builder
		for sc.Scan() {
			line := sc.Text()
			if line == "" && b.Len() > 0 {
				return b.String()
			}
			b.WriteString(line + "\n")
		}
		t.Fatalf("the event stream ended: %v", sc.Err())
		return ""
	}
	if first := next(); !strings.HasPrefix(first, "event: tables\n") || !strings.Contains(first, `data-state="pending"`) {
		t.Errorf("first event:\n%s", first)
	}
	failed := events.ConversionFailed{Job: job, Stage: "resolver", Error: "manifest unknown: <script>alert(1)</script>"}
	if err := d.s.HandleState(context.Background(), delivery(t, events.ConversionFailedType, "s2", failed)); err != nil {
		t.Fatal(err)
	}
	second := next()
	if !strings.Contains(second, `data-state="failed"`) || !strings.Contains(second, "resolver: manifest unknown: &lt;script&gt;") {
		t.Errorf("after the failure:\n%s", second)
	}
}
