package wishlist

import (
	"errors"
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	f, err := ParseFilter([]byte(`version: 1
cvmfs_repo: unpacked.example.org
input:
  - 'http://registry:5000/apps/*'
  - 'registry.example.org/team/tool:v*'
`), "hooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		registry, repo, tag string
		scheme              string
	}{
		{"registry:5000", "apps/web", "1", "http"},
		{"REGISTRY:5000", "apps/db", "latest", "http"},
		{"registry:5000", "apps/web/sub", "1", ""}, // '*' does not cross '/'
		{"registry:5001", "apps/web", "1", ""},
		{"registry.example.org", "team/tool", "v2", "https"},
		{"registry.example.org", "team/tool", "2", ""},
	} {
		p, ok := f.Match(tc.registry, tc.repo, tc.tag)
		if ok != (tc.scheme != "") || (ok && p.Scheme != tc.scheme) {
			t.Errorf("%s/%s:%s: matched %v (%+v), want scheme %q", tc.registry, tc.repo, tc.tag, ok, p, tc.scheme)
		}
	}
	if f.Format() == "" || f.CvmfsRepo != "unpacked.example.org" {
		t.Errorf("%+v", f)
	}
	for _, bad := range []string{
		"version: 1\ncvmfs_repo: r.org\ninput: ['ftp://r/x']\n",
		"version: 1\ncvmfs_repo: r.org\ninput: ['reg*/x']\n",
		"version: 1\ncvmfs_repo: r.org\ninput: ['r.org/[x']\n",
		"version: 1\ncvmfs_repo: r.org\ninput: ['r.org']\n",
		"version: 1\ncvmfs_repo: ../x\ninput: ['r.org/x']\n",
		"version: 1\ninput: ['r.org/x']\n",
	} {
		if _, err := ParseFilter([]byte(bad), "bad.yaml"); !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), "bad.yaml:") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
