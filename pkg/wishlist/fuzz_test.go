package wishlist

import (
	"errors"
	"strings"
	"testing"

	"flatbed.dev/pkg/imageref"
)

// fuzzSeeds are wishlists, good and bad, including those of e2e/malformed_test.go.
var fuzzSeeds = []string{
	good,
	"",
	"{{{ ]]",
	"- a\n- b\n",
	"version: 1\ncvmfs_repo: r.cern.ch\ninput:\n\t- 'r.example.org/a:1'\n",
	"version: 2\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n",
	"version: one\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n",
	"cvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n",
	"version: 1\ninput: ['r.example.org/a:1']\n",
	"version: 1\ncvmfs_repo: r.cern.ch/../x\ninput: ['r.example.org/a:1']\n",
	"version: 1\ncvmfs_repo: /cvmfs/x\ninput: ['r.example.org/a:1']\n",
	"version: 1\ncvmfs_repo: r.cern.ch\ninput: []\n",
	"version: 1\ncvmfs_repo: r.cern.ch\ninput: r.example.org/a:1\n",
	"version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - 42\n",
	"version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - r.example.org/a:1\n  - https://r.example.org/a:1\n",
	"version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - library/ubuntu\n  - reg.example.org/A:1\n  - reg.example.org/a:\n  - 'reg.example.org/a@sha256:xyz'\n",
	"version: 1\ncvmfs_repo: r.cern.ch\ninput:\n  - ftp://reg.example.org/a:1\n  - 'reg.example.org/a b'\n  - reg//double\n",
	"version: 1\ncvmfs_repo: r.cern.ch\noutput_format: 'x.org/$(foo)'\ninput: ['r.example.org/a:1']\n",
	"version: 1\ncvmfs_repo: r.cern.ch\noutput_format: '$(tag)'\ninput: ['r.example.org/a:1']\n",
	"version: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\nignore_errors: []\n",
	"version: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\nignoreErrors: ['[']\n",
	"version: 1\nversion: 1\ncvmfs_repo: r.cern.ch\ninput: ['r.example.org/a:1']\n",
	"version: 1\ncvmfs_repo: r.cern.ch\noutput_format: 'r.example.org/t/$(image)'\ninput: ['r.example.org/a:1*', 'r.example.org/b@sha256:" + strings.Repeat("0", 64) + "']\n",
	"a: &x [*x]\n",
}

// FuzzParse: Parse never panics; every error wraps ErrParse; a parsed wishlist has its
// required fields, every input re-parses to the same reference, and its output name is made
// or refused with an error (never a panic).
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if !errors.Is(err, ErrParse) {
				t.Fatalf("error %v does not wrap ErrParse", err)
			}
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %v does not name the file", err)
			}
			return
		}
		if w.Version != Version || w.CvmfsRepo == "" || len(w.Input) == 0 || len(w.Input) != len(w.Refs()) {
			t.Fatalf("parsed wishlist is incomplete: %+v", w)
		}
		if err := CheckRepo(w.CvmfsRepo); err != nil {
			t.Fatalf("parsed cvmfs_repo fails CheckRepo: %v", err)
		}
		for i, r := range w.Refs() {
			again, err := imageref.Parse(r.String())
			if err != nil || again != r {
				t.Fatalf("input[%d] %q = %+v re-parses to %+v, %v", i, w.Input[i], r, again, err)
			}
			if out, err := w.Output(r); err == nil {
				if _, err := imageref.Parse(out); err != nil {
					t.Fatalf("Output(%s) = %q, which does not parse: %v", r, out, err)
				}
			}
			w.Ignored(w.Input[i])
		}
		if _, err := w.Outputs(); err != nil && !errors.Is(err, ErrParse) {
			t.Fatalf("Outputs error %v does not wrap ErrParse", err)
		}
	})
}
