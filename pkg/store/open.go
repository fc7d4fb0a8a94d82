package store

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

var repoRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*$`)

// Open returns the store of repository repo (e.g. "unpacked.cern.ch" or
// "unpacked.cern.ch/sub/dir") under root. repo comes from wishes anyone may publish: one that
// is absolute, has "." or ".." components or other characters than letters, digits, '.', '_'
// and '-' is refused, so a store never lies outside root.
func Open(root, repo string) (*Store, error) {
	if repo == "" || len(repo) > 255 || !repoRe.MatchString(repo) {
		return nil, fmt.Errorf("repository %q is not a repository name with an optional sub-directory, such as 'unpacked.cern.ch/sub/dir'", repo)
	}
	if err := CheckName(repo); err != nil {
		return nil, fmt.Errorf("repository %q: %w", repo, err)
	}
	return New(filepath.Join(root, repo)), nil
}

// CheckName checks a slash-separated name that becomes a path below the repository root (an
// image's public path and metadata directory, registry/repository:tag): relative, with no
// empty, "." or ".." component and no NUL byte.
func CheckName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("%q is not a relative path", name)
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%q has an empty, '.' or '..' component", name)
		}
	}
	return nil
}
