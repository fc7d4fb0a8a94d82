package registry_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/registry/registrytest"
)

// pushTags pushes one small image under each tag to repo on the plain-http registry host.
func pushTags(t *testing.T, host, repo string, tags []string) {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTagsFollowsPages: a registry that answers the tag list in pages of 10 (Link headers)
// is read to its last page.
func TestTagsFollowsPages(t *testing.T) {
	var lists atomic.Int64
	host := registrytest.Serve(t, func(h http.Handler) http.Handler {
		paged := registrytest.PageTags(10)(h)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/tags/list") {
				lists.Add(1)
			}
			paged.ServeHTTP(w, r)
		})
	})
	var want []string
	for i := range 25 {
		want = append(want, fmt.Sprintf("t%02d", i))
	}
	pushTags(t, host, "testbed/many", want)
	repo, err := name.NewRepository(host+"/testbed/many", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx := registry.ContextWithScheme(context.Background(), "http", host)
	got, err := registry.Tags(ctx, repo, registrytest.Options()...)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("Tags = %q (%d), want the %d pushed", got, len(got), len(want))
	}
	if n := lists.Load(); n != 3 {
		t.Errorf("%d tag-list requests, want 3 pages of at most 10", n)
	}
}

func TestTagsOfAMissingRepository(t *testing.T) {
	host := registrytest.Serve(t, nil)
	repo, err := name.NewRepository(host+"/no/such", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = registry.Tags(registry.ContextWithScheme(context.Background(), "http", host), repo, registrytest.Options()...)
	if !registry.NotFound(err) || !registry.Final(err) {
		t.Errorf("Tags of a missing repository = %v, want a final not-found error", err)
	}
}
