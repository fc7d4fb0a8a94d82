package wishlist

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"flatbed.dev/pkg/imageref"
)

// fakeTags lists the tags of each repository ("scheme://registry/repository") and counts
// how often each was asked.
type fakeTags struct {
	mu    sync.Mutex
	tags  map[string][]string
	fail  map[string]error
	calls map[string]int
}

func (f *fakeTags) list(_ context.Context, r imageref.Ref) ([]string, error) {
	key := r.Scheme + "://" + r.Registry + "/" + r.Repository
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[key]++
	if err := f.fail[key]; err != nil {
		return nil, err
	}
	return f.tags[key], nil
}

const expandList = `version: 1
cvmfs_repo: r.cern.ch
output_format: 'https://thin.example.org/$(repository):$(tag)'
input:
  - 'https://r.example.org/many:t05'
  - 'https://r.example.org/many:t0*'
  - 'https://r.example.org/many:*-rc'
  - 'https://r.example.org/none:v*'
  - 'https://r.example.org/down:*'
  - 'http://r.example.org/empty:*'
ignoreErrors: ['https://r.example.org/many:t07']
`

func TestExpand(t *testing.T) {
	w, err := Parse([]byte(expandList), "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTags{
		tags: map[string][]string{
			"https://r.example.org/many": {"t10", "t07", "t05", "latest", "t01", "2-rc", "t0-rc"},
			"https://r.example.org/none": {"1", "2"},
		},
		fail: map[string]error{"https://r.example.org/down": errors.New("connection refused")},
	}
	imgs, errs := w.Expand(context.Background(), f.list)
	var got []string
	for _, img := range imgs {
		got = append(got, img.Ref.String()+" <- "+w.Input[img.Input])
		if img.Ref.Wildcard() {
			t.Errorf("expanded image %s is a wildcard", img.Ref)
		}
	}
	want := []string{
		"https://r.example.org/many:t05 <- https://r.example.org/many:t05", // the input as written comes first
		"https://r.example.org/many:t0-rc <- https://r.example.org/many:t0*",
		"https://r.example.org/many:t01 <- https://r.example.org/many:t0*",
		"https://r.example.org/many:t07 <- https://r.example.org/many:t0*",
		"https://r.example.org/many:2-rc <- https://r.example.org/many:*-rc", // t0-rc: given once, for the first
	}
	if !slices.Equal(got, want) {
		t.Errorf("Expand =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if n := f.calls["https://r.example.org/many"]; n != 1 {
		t.Errorf("the tags of many were listed %d times for its two wildcards, want once", n)
	}
	if n := f.calls["https://r.example.org/many:t05"]; n != 0 {
		t.Errorf("an input without a wildcard was listed")
	}

	if len(errs) != 3 {
		t.Fatalf("errors = %v, want 3 (none, down, empty)", errs)
	}
	for i, want := range []struct {
		input int
		text  []string
	}{
		{3, []string{"no tag of https://r.example.org/none matches v*", "of its 2 tags", "whole tag"}},
		{4, []string{"listing the tags of https://r.example.org/down for the wildcard *", "connection refused"}},
		{5, []string{"no tag of http://r.example.org/empty matches *: the repository has no tags"}},
	} {
		e := errs[i]
		if e.Input != want.input || e.Image != w.Input[want.input] {
			t.Errorf("error %d is for input %d %q, want %d", i, e.Input, e.Image, want.input)
		}
		for _, s := range want.text {
			if !strings.Contains(e.Error(), s) {
				t.Errorf("error %q lacks %q", e, s)
			}
		}
	}
	if !errors.Is(errs[1], f.fail["https://r.example.org/down"]) {
		t.Errorf("the listing error is not wrapped: %v", errs[1])
	}

	// Each tag gets its own thin image, $(tag) being the concrete tag.
	outs, err := w.OutputsOf(imgs)
	if err != nil {
		t.Fatal(err)
	}
	if outs[1] != "https://thin.example.org/many:t0-rc" || outs[3] != "https://thin.example.org/many:t07" {
		t.Errorf("OutputsOf = %q", outs)
	}
	// ignoreErrors globs apply to the names a wildcard gave.
	if !w.Ignored(imgs[3].Ref.String()) || w.Ignored(imgs[2].Ref.String()) {
		t.Errorf("Ignored of the expanded t07/t01 = %v/%v, want true/false", w.Ignored(imgs[3].Ref.String()), w.Ignored(imgs[2].Ref.String()))
	}
}

// TestOutputsOfNamesTheTag: a format that does not fit one tag a wildcard gave names that tag
// and the input's line.
func TestOutputsOfNamesTheTag(t *testing.T) {
	w, err := Parse([]byte("version: 1\ncvmfs_repo: r.cern.ch\noutput_format: 'thin.example.org/x@$(digest)'\ninput:\n  - 'r.example.org/a@sha256:"+
		strings.Repeat("a", 64)+"'\n  - 'r.example.org/b:1*'\n"), "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := w.Refs()[1]
	_, err = w.OutputsOf([]Image{{Ref: w.Refs()[0], Input: 0}, {Ref: b.WithTag("1.5"), Input: 1}})
	if err == nil || !errors.Is(err, ErrParse) {
		t.Fatalf("OutputsOf = %v, want ErrParse", err)
	}
	for _, want := range []string{"w.yaml:6: input[1] (its tag 1.5)", "not an image", "line 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "input[0]") {
		t.Errorf("error %q names the digest input, whose name is made", err)
	}
}

// TestDigestFormat: $(digest) in output_format is checked against the inputs themselves, so
// a wishlist whose inputs all carry a digest is taken (a built-in sample without a digest
// refused it), and a format that fits no input is still refused where it is written.
func TestDigestFormat(t *testing.T) {
	d := strings.Repeat("b", 64)
	w, err := Parse([]byte("version: 1\ncvmfs_repo: r.cern.ch\noutput_format: 'https://thin.example.org/$(repository)@$(digest)'\ninput:\n"+
		"  - 'r.example.org/a@sha256:"+d+"'\n  - 'r.example.org/b:1@sha256:"+d+"'\n"), "w.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	outs, err := w.Outputs()
	if err != nil || !slices.Equal(outs, []string{"https://thin.example.org/a@sha256:" + d, "https://thin.example.org/b@sha256:" + d}) {
		t.Errorf("Outputs = %q, %v", outs, err)
	}
	_, err = Parse([]byte("version: 1\ncvmfs_repo: r.cern.ch\noutput_format: 'https://thin.example.org/$(repository)@$(digest)'\ninput: ['r.example.org/a:1']\n"), "w.yaml")
	for _, want := range []string{"w.yaml:3: output_format", "for the image https://r.example.org/a:1", `"https://thin.example.org/a@"`, "not an image"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse of a digest format with a tag-only input = %v, want it to contain %q", err, want)
		}
	}
}
