package frontdoor

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"flatbed.dev/events"
)

// A wish added through the API is validated, published as wish.submitted and kept in
// JetStream KV: after every process (and the NATS server) restarts it is still listed, and
// deleting it withdraws it.
func TestWishSurvivesRestart(t *testing.T) {
	reg := testRegistry(t, "apps/web:1")
	dir := t.TempDir()
	d := openDoor(t, dir, nil)

	var created WishView
	code, raw := d.call(t, "POST", "/api/v1/wishes", testToken, WishRequest{Image: "http://" + reg + "/apps/web:1", CvmfsRepo: "unpacked.example.org",
		OutputFormat: "$(scheme)://$(registry)/thin/$(repository):$(tag)"}, &created)
	if code != http.StatusCreated {
		t.Fatalf("POST /api/v1/wishes: %d %s", code, raw)
	}
	if created.ID != Key("unpacked.example.org", "http://"+reg+"/apps/web:1") || created.ThinImage != "http://"+reg+"/thin/apps/web:1" || !created.Published {
		t.Errorf("created %+v", created.Wish)
	}
	if n := storedSubjects(t, d)["flatbed.wish.submitted"]; n != 1 {
		t.Errorf("%d wish.submitted published, want 1", n)
	}
	d.close()

	d = openDoor(t, dir, nil)
	var wl WishList
	if code, raw := d.call(t, "GET", "/api/v1/wishes", testToken, nil, &wl); code != http.StatusOK || len(wl.Wishes) != 1 || wl.Wishes[0].ID != created.ID {
		t.Fatalf("after a restart GET /api/v1/wishes: %d %s", code, raw)
	}
	var one WishView
	if code, raw := d.call(t, "GET", "/api/v1/wishes/"+created.ID, testToken, nil, &one); code != http.StatusOK || one.Image != created.Image {
		t.Fatalf("GET the wish: %d %s", code, raw)
	}
	if code, raw := d.call(t, "DELETE", "/api/v1/wishes/"+created.ID, testToken, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", code, raw)
	}
	if code, _ := d.call(t, "GET", "/api/v1/wishes/"+created.ID, testToken, nil, nil); code != http.StatusNotFound {
		t.Errorf("GET a withdrawn wish: %d, want 404", code)
	}
	if code, _ := d.call(t, "DELETE", "/api/v1/wishes/"+created.ID, testToken, nil, nil); code != http.StatusNotFound {
		t.Errorf("DELETE a withdrawn wish: %d, want 404", code)
	}
	d.call(t, "GET", "/api/v1/wishes", testToken, nil, &wl)
	if len(wl.Wishes) != 0 {
		t.Errorf("listed after withdrawal: %+v", wl.Wishes)
	}
	// Withdrawn, it may be wished again.
	if code, raw := d.call(t, "POST", "/api/v1/wishes", testToken, WishRequest{Image: "http://" + reg + "/apps/web:1", CvmfsRepo: "unpacked.example.org", SkipThin: true}, nil); code != http.StatusCreated {
		t.Errorf("wishing a withdrawn image again: %d %s", code, raw)
	}
}

// Adding a wish checks each thing docker2cvmfs's add-desiderata did, each with its own
// error: the input parses, the output parses, no duplicate, the manifest is reachable; and
// nothing but /healthz and /openapi.json answers without the token.
func TestAddWishRefusals(t *testing.T) {
	reg := testRegistry(t, "apps/web:1")
	d := openDoor(t, t.TempDir(), nil)
	good := WishRequest{Image: "http://" + reg + "/apps/web:1", CvmfsRepo: "unpacked.example.org", SkipThin: true}
	for _, tc := range []struct {
		name  string
		token string
		body  any
		code  int
		word  string
		has   string
	}{
		{"no token", "", good, 401, "unauthorized", "Bearer"},
		{"wrong token", "s3cret-token-for-test", good, 401, "unauthorized", ""},
		{"not JSON", testToken, []byte("{"), 400, "invalid_body", ""},
		{"unknown field", testToken, []byte(`{"image":"x","cvmfs_repo":"r","extra":1}`), 400, "invalid_body", "extra"},
		{"input does not parse", testToken, WishRequest{Image: "library/ubuntu", CvmfsRepo: "unpacked.example.org", SkipThin: true}, 400, "invalid_image", "registry"},
		{"wildcard", testToken, WishRequest{Image: "http://" + reg + "/apps/web:1*", CvmfsRepo: "unpacked.example.org", SkipThin: true}, 400, "invalid_image", "wildcard"},
		{"bad repository", testToken, WishRequest{Image: good.Image, CvmfsRepo: "../etc", SkipThin: true}, 400, "invalid_cvmfs_repo", ""},
		{"output does not parse", testToken, WishRequest{Image: good.Image, CvmfsRepo: "unpacked.example.org", ThinImage: "not an image"}, 400, "invalid_output", "thin image"},
		{"output format unknown variable", testToken, WishRequest{Image: good.Image, CvmfsRepo: "unpacked.example.org", OutputFormat: "$(nope)"}, 400, "invalid_output", "output_format"},
		{"unreachable", testToken, WishRequest{Image: "http://" + reg + "/apps/web:2", CvmfsRepo: "unpacked.example.org", SkipThin: true}, 422, "unreachable", "apps/web:2"},
		{"first", testToken, good, 201, "", ""},
		{"duplicate", testToken, good, 409, "duplicate", "already"},
	} {
		var p Problem
		code, raw := d.call(t, "POST", "/api/v1/wishes", tc.token, tc.body, &p)
		if code != tc.code || p.Code != tc.word || !strings.Contains(p.Error, tc.has) {
			t.Errorf("%s: %d %s, want %d %s containing %q", tc.name, code, raw, tc.code, tc.word, tc.has)
		}
		if strings.Contains(string(raw), testToken) {
			t.Errorf("%s: the answer shows the token", tc.name)
		}
	}
	for _, r := range d.s.Routes() {
		path := strings.ReplaceAll(r.Path, "{id}", Key("a", "b"))
		code, _ := d.call(t, r.Method, path, "", nil, nil)
		want := http.StatusUnauthorized
		switch {
		case r.Path == "/status":
			want = http.StatusSeeOther // to /login
		case !r.Auth && r.Method == "GET":
			want = http.StatusOK
		case !r.Auth:
			continue // POST /login checks the token it is given
		}
		if code != want {
			t.Errorf("%s %s without the token: %d, want %d", r.Method, r.Path, code, want)
		}
	}
	if n := storedSubjects(t, d)["flatbed.wish.submitted"]; n != 1 {
		t.Errorf("%d wish.submitted published, want 1 (only the accepted wish)", n)
	}
}

// failingPublisher fails the first n publishes, as a NATS server that is away does.
type failingPublisher struct {
	events.Publisher
	mu sync.Mutex
	n  int
}

func (p *failingPublisher) Publish(ctx context.Context, env *events.Envelope) error {
	p.mu.Lock()
	fail := p.n > 0
	p.n--
	p.mu.Unlock()
	if fail {
		return errors.New("nats: no response from stream")
	}
	return p.Publisher.Publish(ctx, env)
}

// A wish recorded whose publish failed (the client was told 503, "try again") is not lost:
// the client's retry publishes it instead of being refused as a duplicate, and one nobody
// retries is published by the front door's sweep. Each is published once.
func TestWishWhosePublishFailedIsPublished(t *testing.T) {
	reg := testRegistry(t, "apps/web:1", "apps/api:1")
	var pub *failingPublisher
	d := openDoor(t, t.TempDir(), func(s *Service) {
		pub = &failingPublisher{Publisher: s.Bus, n: 1}
		s.Bus = pub
	})
	req := WishRequest{Image: "http://" + reg + "/apps/web:1", CvmfsRepo: "unpacked.example.org", SkipThin: true}
	if code, raw := d.call(t, "POST", "/api/v1/wishes", testToken, req, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("POST while publishing fails: %d %s, want 503", code, raw)
	}
	var created WishView
	if code, raw := d.call(t, "POST", "/api/v1/wishes", testToken, req, &created); code != http.StatusCreated || !created.Published {
		t.Fatalf("the client's retry: %d %s, want 201 and the wish published", code, raw)
	}
	if code, raw := d.call(t, "POST", "/api/v1/wishes", testToken, req, nil); code != http.StatusConflict {
		t.Errorf("a third POST of a published wish: %d %s, want 409", code, raw)
	}
	other := req
	other.MultiArch = true
	other.Image = "http://" + reg + "/apps/api:1"
	pub.mu.Lock()
	pub.n = 1
	pub.mu.Unlock()
	if code, raw := d.call(t, "POST", "/api/v1/wishes", testToken, other, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("POST while publishing fails: %d %s, want 503", code, raw)
	}
	different := other
	different.MultiArch = false
	if code, raw := d.call(t, "POST", "/api/v1/wishes", testToken, different, nil); code != http.StatusConflict {
		t.Errorf("a retry asking for something else than the recorded wish: %d %s, want 409", code, raw)
	}
	if n := storedSubjects(t, d)["flatbed.wish.submitted"]; n != 1 {
		t.Fatalf("%d wish.submitted before the sweep, want 1", n)
	}

	// Nobody retries the second: the sweep publishes it once it is old enough.
	defer func(age time.Duration) { UnpublishedAge = age }(UnpublishedAge)
	UnpublishedAge = time.Hour
	if n, err := d.s.publishUnpublished(context.Background()); err != nil || n != 0 {
		t.Errorf("sweep of a wish younger than UnpublishedAge: %d published, %v; want none", n, err)
	}
	UnpublishedAge = 0
	if n, err := d.s.publishUnpublished(context.Background()); err != nil || n != 1 {
		t.Errorf("sweep: %d published, %v; want 1", n, err)
	}
	if n, err := d.s.publishUnpublished(context.Background()); err != nil || n != 0 {
		t.Errorf("second sweep: %d published, %v; want none", n, err)
	}
	if n := storedSubjects(t, d)["flatbed.wish.submitted"]; n != 2 {
		t.Errorf("%d wish.submitted after the sweep, want 2", n)
	}
	var wl WishList
	d.call(t, "GET", "/api/v1/wishes", testToken, nil, &wl)
	for _, w := range wl.Wishes {
		if !w.Published {
			t.Errorf("wish %s still unpublished", w.Image)
		}
	}
}
