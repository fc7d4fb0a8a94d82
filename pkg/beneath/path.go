package beneath

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidPath is returned for a path that is not a plain relative path below the root:
// empty, absolute, holding a NUL byte, or an empty, "." or ".." component.
var ErrInvalidPath = errors.New("not a plain relative path")

// split checks rel and returns its parent ("" for the root) and last component.
func split(rel string) (parent, base string, err error) {
	if rel == "" || strings.HasPrefix(rel, "/") || strings.IndexByte(rel, 0) >= 0 {
		return "", "", fmt.Errorf("%q: %w", rel, ErrInvalidPath)
	}
	for c := range strings.SplitSeq(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return "", "", fmt.Errorf("%q: %w", rel, ErrInvalidPath)
		}
	}
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:], nil
	}
	return "", rel, nil
}
