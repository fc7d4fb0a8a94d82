package imageref

import (
	"slices"
	"strings"
)

// MatchesTag reports whether tag is one r names: r's tag itself, or, for a wildcard, a tag the
// whole of which the pattern matches, each '*' standing for any run of characters (DUCC's
// ".*", anchored at both ends). The other characters match only themselves: DUCC builds a
// regular expression in which '.' matches any character, so "1.2*" would also take "1x2".
func (r Ref) MatchesTag(tag string) bool {
	if !r.Wildcard() {
		return tag == r.Tag
	}
	return matchStars(r.Tag, tag)
}

// MatchingTags returns the tags of tags that r names, sorted and without repeats.
func (r Ref) MatchingTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if r.MatchesTag(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// matchStars matches s against pattern, in which only '*' is special. It takes the literal
// runs between the stars in order, each at its first place after the previous one: the
// first must start s, the last must end it. That is linear in len(s) per run, unlike
// backtracking, so a hostile tag list costs little.
func matchStars(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	middle := s[len(first) : len(s)-len(last)]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(middle, p)
		if i < 0 {
			return false
		}
		middle = middle[i+len(p):]
	}
	return true
}
