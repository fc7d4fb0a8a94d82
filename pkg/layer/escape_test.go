package layer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Each case runs in <tmp>/parent/layerfs next to a sentinel <tmp>/parent/outside; afterwards
// parent must hold exactly those two, the sentinel untouched and unlinked.
func TestEscapes(t *testing.T) {
	cases := []struct {
		name    string
		ents    func(parent string) []ent
		wantErr string   // "" = must succeed
		inside  []string // expected tree of layerfs on success
		links   func(parent string) []Link
	}{
		{name: "dotdot", wantErr: `extracting "../../etc/x": unsafe layer entry: name has a ".." component`,
			ents: func(string) []ent { return []ent{file("../../etc/x", "x", 0o644)} }},
		{name: "absolute", ents: func(string) []ent { return []ent{file("/abs/path", "x", 0o644)} },
			inside: []string{"abs", "abs/path"}},
		{name: "dotdot symlink name", wantErr: `"../outside": unsafe layer entry`,
			ents: func(string) []ent { return []ent{symlinkEnt("../outside", "/etc/passwd")} }},
		{name: "file through absolute symlink", wantErr: "evil is a symlink",
			ents: func(parent string) []ent { return []ent{symlinkEnt("evil", parent), file("evil/x", "x", 0o644)} }},
		{name: "file through relative symlink", wantErr: "up is a symlink",
			ents: func(string) []ent { return []ent{symlinkEnt("up", ".."), file("up/outside", "overwrite", 0o644)} }},
		{name: "dir through symlink", wantErr: "a/up is a symlink",
			ents: func(string) []ent { return []ent{symlinkEnt("a/up", "../.."), dirEnt("a/up/newdir/", 0o755)} }},
		{name: "hardlink through symlink", wantErr: "up is a symlink",
			ents: func(string) []ent { return []ent{symlinkEnt("up", ".."), linkEnt("h", "up/outside")} }},
		{name: "whiteout through symlink", wantErr: "up is a symlink",
			ents: func(string) []ent { return []ent{symlinkEnt("up", ".."), file("up/.wh.outside", "", 0o644)} }},
		{name: "hardlink to dotdot", wantErr: `hard link target "../outside": unsafe layer entry`,
			ents: func(string) []ent { return []ent{linkEnt("h", "../outside")} }},
		{name: "hardlink to absolute outside", ents: func(parent string) []ent {
			return []ent{linkEnt("h", filepath.Join(parent, "outside"))}
		}, links: func(parent string) []Link {
			// recorded relative to the layer root, for the flattener to resolve inside the image
			return []Link{{Path: "h", Target: strings.TrimPrefix(filepath.Join(parent, "outside"), "/")}}
		}},
		{name: "symlink replaced by dir", ents: func(parent string) []ent {
			return []ent{symlinkEnt("evil", parent), dirEnt("evil/", 0o755), file("evil/x", "x", 0o644)}
		}, inside: []string{"evil", "evil/x"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent, dir := layerDir(t)
			sentinel := filepath.Join(parent, "outside")
			if err := os.WriteFile(sentinel, []byte("sentinel"), 0o644); err != nil {
				t.Fatal(err)
			}
			raw := mkTar(t, c.ents(parent)...)
			blob := compress(t, "gzip", raw)
			m, err := Extract(context.Background(), bytes.NewReader(blob), dir, Want{Digest: sha(blob), DiffID: sha(raw), Size: int64(len(blob))}, Options{})
			switch {
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("err = %v, want one containing %q", err, c.wantErr)
			case c.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case c.wantErr == "":
				if c.inside != nil {
					if got := tree(t, dir); !slices.Equal(got, c.inside) {
						t.Errorf("layerfs = %v, want %v", got, c.inside)
					}
				}
				if c.links != nil && !slices.Equal(m.Links, c.links(parent)) {
					t.Errorf("links = %v, want %v", m.Links, c.links(parent))
				}
			}
			got := tree(t, parent)
			if !slices.Contains(got, "layerfs") || !slices.Contains(got, "outside") {
				t.Errorf("parent holds %v", got)
			}
			for _, e := range got {
				if e != "layerfs" && !strings.HasPrefix(e, "layerfs/") && e != "outside" {
					t.Errorf("written outside: %s", e)
				}
			}
			if got := readFile(t, sentinel); got != "sentinel" {
				t.Errorf("sentinel changed: %q", got)
			}
			if st := lstat(t, sentinel); st.Nlink != 1 {
				t.Errorf("sentinel nlink %d: hard-linked from inside", st.Nlink)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"a/b": "a/b", "./a/./b/": "a/b", "/x": "x", "//x/": "x", "...": "...", "a/..b/c..": "a/..b/c..",
		"": "", ".": "", "./": "", "/": "", "a//b": "a/b",
	} {
		got, err := cleanName(in)
		if err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"a\x00b", "..", "../x", "../../etc/x", "a/../../b", "a/../b", "/..", "a/..", "./../x"} {
		if got, err := cleanName(in); !errors.Is(err, ErrUnsafe) {
			t.Errorf("cleanName(%q) = %q, %v; want ErrUnsafe", in, got, err)
		}
	}
}
