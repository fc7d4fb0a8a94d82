package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/registry/registrytest"
)

// pagingProxy is a reverse proxy in front of a real registry that answers tag lists in pages
// (docker-registry 2.8 ignores ?n= and answers every tag at once) and records what each
// connection to it opens with: a TLS handshake or plain HTTP.
type pagingProxy struct {
	Host  string
	lists atomic.Int64 // tag-list requests
	first *registrytest.FirstBytes
}

func startPagingProxy(t testing.TB, reg *harness.Registry, pageSize int) *pagingProxy {
	t.Helper()
	upstream, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	px := &pagingProxy{}
	paged := registrytest.PageTags(pageSize)(httputil.NewSingleHostReverseProxy(upstream))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/tags/list") {
			px.lists.Add(1)
		}
		paged.ServeHTTP(w, r)
	}))
	px.first = &registrytest.FirstBytes{Listener: srv.Listener}
	srv.Listener = px.first
	srv.Start()
	t.Cleanup(srv.Close)
	px.Host = strings.TrimPrefix(srv.URL, "http://")
	return px
}

// pushTags pushes tags of repo to reg, the i-th tag being imgs[i%len(imgs)].
func pushTags(t testing.TB, reg *harness.Registry, repo string, tags []string, imgs []imagegen.Named) {
	t.Helper()
	var named []imagegen.Named
	for i, tag := range tags {
		named = append(named, imagegen.Named{Name: repo, Tag: tag, Image: imgs[i%len(imgs)].Image})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := imagegen.Push(ctx, reg.Host, named); err != nil {
		t.Fatal(err)
	}
}

// registryTags reads the tag list of repo straight from the registry, sorted.
func registryTags(t testing.TB, reg *harness.Registry, repo string) []string {
	t.Helper()
	resp, err := http.Get(reg.URL() + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("tag list of %s (%s): %v", repo, resp.Status, err)
	}
	slices.Sort(list.Tags)
	return list.Tags
}

// publicNames lists the public paths of a repository of the store under registry/dir/.
func publicNames(t testing.TB, storeRoot, registry, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(storeRoot, mpRepo, registry, dir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// TestWildcardTags: a wildcard wish converts exactly the tags it matches, read from a tag
// list of three pages (the real registry behind a proxy that pages it), each tag its own
// wish with its own thin image ($(tag) is the tag); expand-wildcard prints the same
// expansion; a wildcard that matches nothing fails naming the repository and the pattern,
// and ignoreErrors makes that a clean exit; no connection to the http:// registry opens
// with a TLS handshake, from the tag listing to the thin-image push.
func TestWildcardTags(t *testing.T) {
	reg := harness.StartRegistry(t)
	px := startPagingProxy(t, reg, 10)
	var tags []string
	for i := range 30 {
		tags = append(tags, fmt.Sprintf("t%02d", i))
	}
	pushTags(t, reg, "testbed/many", tags, smallImages(t, "many", 2))
	want := []string{"t05", "t15", "t25"} // one on each page
	wildcard := "http://" + px.Host + "/testbed/many:t*5"
	nothing := "http://" + px.Host + "/testbed/many:v*"
	wl := filepath.Join(t.TempDir(), "wishlist.yaml")
	content := fmt.Sprintf("version: 1\nuser: e2e\ncvmfs_repo: '%s'\noutput_format: '$(scheme)://$(registry)/thin/$(repository):$(tag)'\ninput:\n  - '%s'\n  - '%s'\n",
		mpRepo, wildcard, nothing)
	ignoring := content + "ignoreErrors: ['" + nothing + "']\n"
	if err := os.WriteFile(wl, []byte(ignoring), 0o644); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	out, errOut := runFlatbed(t, 1, "expand-wildcard", wl)
	var wantLines []string
	for _, tag := range want {
		wantLines = append(wantLines, "http://"+px.Host+"/testbed/many:"+tag)
	}
	if got := strings.Fields(out); !slices.Equal(got, wantLines) {
		t.Errorf("expand-wildcard printed\n%s\nwant\n%s", out, strings.Join(wantLines, "\n"))
	}
	for _, s := range []string{nothing + ": no tag of http://" + px.Host + "/testbed/many matches v* (of its 30 tags", "(ignored: matches ignoreErrors)",
		"1 wildcard input(s) of " + wl + " gave no image"} {
		if !strings.Contains(errOut, s) {
			t.Errorf("expand-wildcard's stderr lacks %q:\n%s", s, lastLines(errOut, 20))
		}
	}
	if n := px.lists.Load(); n != 3 {
		t.Errorf("expand-wildcard made %d tag-list requests, want 3: one listing of 3 pages for both wildcards of the repository", n)
	}
	t.Logf("expand-wildcard: %s", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	px.first.Reset()
	storeRoot := t.TempDir()
	args := []string{"convert", wl, "--store-root", storeRoot, "--state-dir", t.TempDir()}
	out, _ = runFlatbed(t, 0, args...)
	for _, img := range wantLines {
		if line := resultLine(t, out, img); !strings.HasPrefix(line, "converted ") {
			t.Errorf("result of %s: %q", img, line)
		}
	}
	if !strings.Contains(out, "failed            "+nothing+": no tag of") || !strings.Contains(out, "(ignored: matches ignoreErrors)") {
		t.Errorf("convert does not report the ignored wildcard that matched nothing:\n%s", out)
	}
	if got, wantNames := publicNames(t, storeRoot, px.Host, "testbed"), []string{"many:t05", "many:t15", "many:t25"}; !slices.Equal(got, wantNames) {
		t.Errorf("public paths under testbed/: %q, want exactly %q", got, wantNames)
	}
	if got := registryTags(t, reg, "thin/testbed/many"); !slices.Equal(got, want) {
		t.Errorf("thin images pushed: tags %q, want %q", got, want)
	}
	if hs, all := px.first.TLSHandshakes(); hs > 0 || all == 0 {
		t.Errorf("%d of %d connections to the http:// registry opened with a TLS handshake, want none", hs, all)
	}
	t.Logf("convert of the wildcard: %s", time.Since(start).Round(time.Millisecond))

	// Without ignoreErrors the wildcard that matched nothing fails the run.
	if err := os.WriteFile(wl, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut = runFlatbed(t, 1, args...)
	if !strings.Contains(out, "FAILED            "+nothing+": no tag of http://"+px.Host+"/testbed/many matches v*") ||
		strings.Count(out, "already converted") != len(want) || !strings.Contains(errOut, "1 of 4 image(s) failed") {
		t.Errorf("second convert, without ignoreErrors:\nstdout:\n%s\nstderr:\n%s", out, lastLines(errOut, 10))
	}
}
