package beneath

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidPath is returned for a path that is not a plain relative path below the root:
// empty, absolute, holding a NUL byte, or an empty, "." or ".." component.
var ErrInvalidPath = errors.New("not a plain relative path")

// Split checks rel and returns its parent ("" for the root) and last component.
func Split(rel string) (parent, base string, err error) {
	if err := check(rel); err != nil {
		return "", "", err
	}
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:], nil
	}
	return "", rel, nil
}

// check refuses rel unless it is a plain relative path: nothing in it may name the root's
// parent, the root itself or anything but a child of the directory before it.
func check(rel string) error {
	if rel == "" || rel[0] == '/' || strings.IndexByte(rel, 0) >= 0 {
		return fmt.Errorf("%q: %w", rel, ErrInvalidPath)
	}
	for c := range strings.SplitSeq(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%q: %w", rel, ErrInvalidPath)
		}
	}
	return nil
}

// checkName refuses name unless it is one plain component, as the *At functions take it.
func checkName(name string) error {
	if strings.IndexByte(name, '/') >= 0 {
		return fmt.Errorf("%q: %w", name, ErrInvalidPath)
	}
	return check(name)
}

func join(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}
