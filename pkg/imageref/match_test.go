package imageref

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestMatchesTag(t *testing.T) {
	tests := []struct {
		pattern, tag string
		want         bool
	}{
		{"21.2.1*", "21.2.1", true},
		{"21.2.1*", "21.2.15-x", true},
		{"21.2.1*", "21.2.2", false},
		{"21.2.1*", "x21.2.1", false}, // anchored at the start
		{"*-slim", "3.12-slim", true},
		{"*-slim", "3.12-slim-bookworm", false}, // anchored at the end
		{"t0*", "t0", true},
		{"t0*", "t01", true},
		{"t0*", "t10", false},
		{"*", "anything", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false}, // the two literal runs cannot share the one 'a'
		{"a*a", "aa", true},
		{"**", "x", true},
		{"1.2*", "1x2", false}, // '.' is a dot, not DUCC's regular-expression "any character"
		{"1.2", "1.2", true},   // no wildcard: the tag itself
		{"1.2", "1.20", false},
	}
	for _, tt := range tests {
		r := Ref{Scheme: "https", Registry: "r.example.org", Repository: "a", Tag: tt.pattern}
		if got := r.MatchesTag(tt.tag); got != tt.want {
			t.Errorf("%q.MatchesTag(%q) = %v, want %v", tt.pattern, tt.tag, got, tt.want)
		}
	}
}

// TestMatchesTagIsAnAnchoredRegexp: for patterns and tags of the tag alphabet, matching is
// the anchored regular expression with each '*' as ".*" and everything else literal.
func TestMatchesTagIsAnAnchoredRegexp(t *testing.T) {
	alphabet := []string{"a", "b", ".", "*"}
	var words []string
	var grow func(prefix string, n int)
	grow = func(prefix string, n int) {
		words = append(words, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			grow(prefix+c, n-1)
		}
	}
	grow("", 4)
	for _, p := range words {
		if !strings.Contains(p, "*") {
			continue
		}
		var b strings.Builder
		for i, part := range strings.Split(p, "*") {
			if i > 0 {
				b.WriteString(".*")
			}
			b.WriteString(regexp.QuoteMeta(part))
		}
		re := regexp.MustCompile("^(?:" + b.String() + ")$")
		r := Ref{Tag: p}
		for _, s := range words {
			if strings.Contains(s, "*") {
				continue
			}
			if got, want := r.MatchesTag(s), re.MatchString(s); got != want {
				t.Fatalf("%q.MatchesTag(%q) = %v, the regexp %s says %v", p, s, got, re, want)
			}
		}
	}
}

func TestMatchingTags(t *testing.T) {
	r := Ref{Tag: "t0*"}
	got := r.MatchingTags([]string{"t09", "t10", "t01", "latest", "t01", "t0"})
	if want := []string{"t0", "t01", "t09"}; !slices.Equal(got, want) {
		t.Errorf("MatchingTags = %q, want %q", got, want)
	}
	if got := r.MatchingTags([]string{"t1", "t2"}); len(got) != 0 {
		t.Errorf("MatchingTags without a match = %q, want none", got)
	}
}
