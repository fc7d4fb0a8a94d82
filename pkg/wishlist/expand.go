package wishlist

import (
	"context"
	"fmt"
	"sync"

	"flatbed.dev/pkg/imageref"
)

// Image is one image a wishlist asks for: an input as written, or one tag its wildcard matched.
type Image struct {
	Ref   imageref.Ref // never a wildcard once expanded
	Input int          // the input it comes from: an index of Input
}

// TagLister lists every tag of the repository ref names (its scheme, registry and repository).
type TagLister func(ctx context.Context, ref imageref.Ref) ([]string, error)

// WildcardError is a wildcard input that gives no image: its repository has no tag the
// pattern matches (Err nil), or its tags could not be listed (Err).
type WildcardError struct {
	Input int    // an index of Input
	Image string // the input as written
	Ref   imageref.Ref
	Tags  int // how many tags the repository has, when they were listed
	Err   error
}

func (e *WildcardError) Error() string {
	repo := e.Ref.Scheme + "://" + e.Ref.Registry + "/" + e.Ref.Repository
	if e.Err != nil {
		return fmt.Sprintf("listing the tags of %s for the wildcard %s: %v", repo, e.Ref.Tag, e.Err)
	}
	if e.Tags == 0 {
		return fmt.Sprintf("no tag of %s matches %s: the repository has no tags", repo, e.Ref.Tag)
	}
	tags := "tags"
	if e.Tags == 1 {
		tags = "tag"
	}
	return fmt.Sprintf("no tag of %s matches %s (of its %d %s; the pattern must match a whole tag, '*' standing for any characters)", repo, e.Ref.Tag, e.Tags, tags)
}

func (e *WildcardError) Unwrap() error { return e.Err }

// listConcurrency bounds the tag listings under way at once.
const listConcurrency = 8

// Images returns the inputs as they are, wildcards included (see Expand).
func (w *Wishlist) Images() []Image {
	imgs := make([]Image, len(w.refs))
	for i, r := range w.refs {
		imgs[i] = Image{Ref: r, Input: i}
	}
	return imgs
}

// Expand returns the images w asks for, in the order of Input: an input without a wildcard as
// it is, a wildcard input as every tag of its repository the pattern matches, sorted (see
// imageref.Ref.MatchesTag), each tag its own image. An image that two inputs give is given
// once, for the first. A wildcard input that gives no image is a WildcardError, and the
// other inputs are expanded all the same. Each repository's tags are listed once, however
// many wildcards name it.
func (w *Wishlist) Expand(ctx context.Context, list TagLister) ([]Image, []*WildcardError) {
	type listing struct {
		tags []string
		err  error
	}
	listings := map[string]*listing{} // by scheme://registry/repository
	repoKey := func(r imageref.Ref) string { return r.Scheme + "://" + r.Registry + "/" + r.Repository }
	var wg sync.WaitGroup
	slots := make(chan struct{}, listConcurrency)
	for _, r := range w.refs {
		if !r.Wildcard() || listings[repoKey(r)] != nil {
			continue
		}
		l := &listing{}
		listings[repoKey(r)] = l
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			l.tags, l.err = list(ctx, r)
		}()
	}
	wg.Wait()

	var (
		imgs []Image
		errs []*WildcardError
		seen = map[string]bool{}
	)
	add := func(r imageref.Ref, input int) {
		if !seen[r.String()] {
			seen[r.String()] = true
			imgs = append(imgs, Image{Ref: r, Input: input})
		}
	}
	for i, r := range w.refs {
		if !r.Wildcard() {
			add(r, i)
			continue
		}
		l := listings[repoKey(r)]
		matches := r.MatchingTags(l.tags)
		if l.err != nil || len(matches) == 0 {
			errs = append(errs, &WildcardError{Input: i, Image: w.Input[i], Ref: r, Tags: len(l.tags), Err: l.err})
			continue
		}
		for _, tag := range matches {
			add(r.WithTag(tag), i)
		}
	}
	return imgs, errs
}
