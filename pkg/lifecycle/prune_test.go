package lifecycle_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/registry/registrytest"
)

// push writes a random image to host/repo and returns its manifest digest.
func push(t *testing.T, host, repo string) string {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, registry.Options(context.Background(), registrytest.Options()...)...); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

func upstream() lifecycle.RegistryUpstream {
	return lifecycle.RegistryUpstream{Client: registry.NewClient(registrytest.Options()...)}
}

func byName(ps []lifecycle.Pruned) map[string]lifecycle.Pruned {
	m := map[string]lifecycle.Pruned{}
	for _, p := range ps {
		m[p.Name] = p
	}
	return m
}

// Of four recorded images, the one whose tag the registry no longer has is pruned (its names
// go, as with delete-image; its layers stay for gc), and so is one pinned to a digest the
// registry no longer has; an image pinned to a digest that is still there stays, even though
// no tag names it. A dry run says the same and changes nothing.
func TestPruneRemovesWhatTheRegistryNoLongerHas(t *testing.T) {
	host := registrytest.Serve(t, nil)
	f := newFixture(t)
	l := f.layer("base")
	push(t, host, "apps/kept:1")
	pinned := push(t, host, "apps/pinned:1")
	gonePin := digest("a manifest nobody pushed")
	names := []string{host + "/apps/kept:1", host + "/apps/gone:1", host + "/apps/pinned@" + pinned, host + "/apps/pinned@" + gonePin}
	for _, n := range names {
		f.image(n, n, l)
	}
	ctx := context.Background()
	before := tree(t, f.st.Root)
	dry, err := lifecycle.Prune(ctx, f.st, lifecycle.PruneOptions{Upstream: upstream(), DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(before, tree(t, f.st.Root)); d != "" {
		t.Errorf("the dry run changed the store:\n%s", d)
	}
	ps, err := lifecycle.Prune(ctx, f.st, lifecycle.PruneOptions{Upstream: upstream()})
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range [][]lifecycle.Pruned{dry, ps} {
		got := byName(run)
		if len(got) != 4 {
			t.Fatalf("Prune reported %d images, want 4: %+v", len(got), run)
		}
		for _, n := range names {
			p := got[n]
			wantGone := strings.Contains(n, "gone") || strings.HasSuffix(n, gonePin)
			if p.Err != nil || p.Gone != wantGone {
				t.Errorf("%s: gone %v, err %v; want gone %v", n, p.Gone, p.Err, wantGone)
			}
			if wantGone && !slices.Contains(p.Removed, ".metadata/"+n) {
				t.Errorf("%s: removed %v", n, p.Removed)
			}
		}
	}
	for _, n := range names {
		_, err := os.Lstat(f.st.PublicPath(n))
		if gone := strings.Contains(n, "gone") || strings.HasSuffix(n, gonePin); gone != (err != nil) {
			t.Errorf("%s: public path there: %v, want %v", n, err == nil, !gone)
		}
	}
	if !f.st.HasLayer(l) {
		t.Error("prune removed a layer: only garbage collection may")
	}
}

// An answer that is not "gone" never removes anything: refused credentials, a busy
// registry, and a HEAD answered 404 that a GET contradicts. The other images are handled all
// the same.
func TestPruneKeepsWhatTheRegistryDoesNotClearlyDeny(t *testing.T) {
	var wrap func(http.Handler) http.Handler = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case strings.Contains(r.URL.Path, "/denied/"):
				w.WriteHeader(http.StatusUnauthorized)
				return
			case strings.Contains(r.URL.Path, "/busy/"):
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			case strings.Contains(r.URL.Path, "/nohead/") && r.Method == http.MethodHead:
				w.WriteHeader(http.StatusNotFound)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	host := registrytest.Serve(t, wrap)
	push(t, host, "apps/nohead:1")
	f := newFixture(t)
	l := f.layer("base")
	names := []string{host + "/apps/denied:1", host + "/apps/busy:1", host + "/apps/nohead:1", host + "/apps/gone:1"}
	for _, n := range names {
		f.image(n, n, l)
	}
	ps, err := lifecycle.Prune(context.Background(), f.st, lifecycle.PruneOptions{Upstream: upstream()})
	if err != nil {
		t.Fatal(err)
	}
	got := byName(ps)
	for n, want := range map[string]string{names[0]: "401", names[1]: "503", names[2]: "", names[3]: ""} {
		p := got[n]
		if want == "" && p.Err != nil || want != "" && (p.Err == nil || !strings.Contains(p.Err.Error(), want)) {
			t.Errorf("%s: err %v, want one naming %q", n, p.Err, want)
		}
		if wantGone := n == names[3]; p.Gone != wantGone {
			t.Errorf("%s: gone %v, want %v", n, p.Gone, wantGone)
		}
		if _, err := os.Lstat(f.st.PublicPath(n)); (err == nil) == (n == names[3]) {
			t.Errorf("%s: public path there: %v", n, err == nil)
		}
	}
}

// A registry that does not answer removes nothing; it is asked once, and its other images are
// reported unchecked with why.
func TestPruneStopsAskingARegistryThatDoesNotAnswer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there now
	f := newFixture(t)
	lay := f.layer("base")
	names := []string{host + "/apps/a:1", host + "/apps/b:1", host + "/apps/c:1"}
	for _, n := range names {
		f.image(n, n, lay)
	}
	var asked atomic.Int32
	up := countingUpstream{inner: upstream(), n: &asked}
	ps, err := lifecycle.Prune(context.Background(), f.st, lifecycle.PruneOptions{Upstream: up})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Gone || p.Err == nil || !strings.Contains(p.Err.Error(), host) {
			t.Errorf("%s: gone %v, err %v; want an error naming %s", p.Name, p.Gone, p.Err, host)
		}
		if _, err := os.Lstat(f.st.PublicPath(p.Name)); err != nil {
			t.Errorf("%s was removed", p.Name)
		}
	}
	if asked.Load() != 1 {
		t.Errorf("the unreachable registry was asked %d times, want once", asked.Load())
	}
}

type countingUpstream struct {
	inner lifecycle.Upstream
	n     *atomic.Int32
}

func (u countingUpstream) Gone(ctx context.Context, ref imageref.Ref) (bool, error) {
	u.n.Add(1)
	return u.inner.Gone(ctx, ref)
}

// With a wishlist, an image no input names any more is pruned without asking its registry
// (which here does not even answer); an image a wildcard, a tag or a digest still names is
// kept, and asked about as usual.
func TestPruneWithAWishlist(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	f := newFixture(t)
	lay := f.layer("base")
	pin := digest("pinned")
	names := []string{host + "/apps/a:1.2", host + "/apps/b:2", host + "/apps/c:1", host + "/apps/d@" + pin, host + "/other/a:1.2"}
	for _, n := range names {
		f.image(n, n, lay)
	}
	var refs []imageref.Ref
	for _, in := range []string{"http://" + host + "/apps/a:1.*", "http://" + host + "/apps/b:2", "http://" + host + "/apps/d@" + pin} {
		r, err := imageref.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	var asked atomic.Int32
	ps, err := lifecycle.Prune(context.Background(), f.st, lifecycle.PruneOptions{Upstream: countingUpstream{inner: upstream(), n: &asked}, Wished: lifecycle.WishedBy(refs)})
	if err != nil {
		t.Fatal(err)
	}
	got := byName(ps)
	for _, n := range []string{names[2], names[4]} {
		if p := got[n]; !p.Unwished || !p.Gone || p.Err != nil || !slices.Contains(p.Removed, ".metadata/"+n) {
			t.Errorf("%s, on no input: %+v", n, p)
		}
	}
	for _, n := range []string{names[0], names[1], names[3]} {
		if p := got[n]; p.Unwished || p.Gone || p.Err == nil {
			t.Errorf("%s, still wished (and its registry down): %+v", n, p)
		}
		if _, err := os.Lstat(f.st.PublicPath(n)); err != nil {
			t.Errorf("%s was removed", n)
		}
	}
	if asked.Load() != 1 {
		t.Errorf("the registry was asked %d times, want once (about a wished image)", asked.Load())
	}
}

// A multi-arch image is asked about by its tag once, as recorded with its index; pruned, it
// loses its platforms' links and records with its public path.
func TestPruneMultiArch(t *testing.T) {
	host := registrytest.Serve(t, nil)
	push(t, host, "apps/multi:1")
	f := newFixture(t)
	layers := map[string]string{"amd64": f.layer("amd64"), "arm64:v8": f.layer("arm64")}
	kept, gone := host+"/apps/multi:1", host+"/apps/multi:2"
	f.multiImage(kept, layers)
	f.multiImage(gone, layers)
	ps, err := lifecycle.Prune(context.Background(), f.st, lifecycle.PruneOptions{Upstream: upstream()})
	if err != nil {
		t.Fatal(err)
	}
	got := byName(ps)
	if len(ps) != 2 || got[kept].Gone || got[kept].Err != nil || !got[gone].Gone || got[gone].Err != nil {
		t.Fatalf("Prune: %+v", ps)
	}
	for _, dir := range []string{"amd64", "arm64:v8"} {
		if _, err := os.Lstat(f.st.MultiarchPath(dir, gone)); err == nil {
			t.Errorf("the pruned image's %s link is still there", dir)
		}
		if _, err := os.Stat(f.st.MultiarchPath(dir, kept)); err != nil {
			t.Errorf("the kept image's %s link: %v", dir, err)
		}
	}
	if ps, err := lifecycle.Verify(f.st); err != nil || len(ps) != 0 {
		t.Errorf("after pruning, verify: %v, %v", ps, err)
	}
}
