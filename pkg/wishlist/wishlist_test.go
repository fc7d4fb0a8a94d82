package wishlist

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestIgnored(t *testing.T) {
	w := &Wishlist{IgnoreErrors: []string{
		"https://registry.hub.docker.com/foo/*",
		"*/bar/baz:1.*",
	}}
	tests := []struct {
		image string
		want  bool
	}{
		{"https://registry.hub.docker.com/foo/x:1", true},
		{"registry.hub.docker.com/foo/x:1", true}, // matched through its whole name
		{"https://registry.hub.docker.com/foo/x/y:1", false},
		{"https://registry.hub.docker.com/other/x:1", false},
		{"r.example.org/bar/baz:1.2", true},
		{"r.example.org/bar/baz:2", false},
	}
	for _, tt := range tests {
		if got := w.Ignored(tt.image); got != tt.want {
			t.Errorf("Ignored(%q) = %v, want %v", tt.image, got, tt.want)
		}
	}
}

func TestMergeIgnoreErrorsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ignore.yaml")
	if err := os.WriteFile(path, []byte("ignoreErrors:\n  - 'a/*'\n  - 'b/*'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &Wishlist{IgnoreErrors: []string{"x"}}
	if err := w.MergeIgnoreErrorsFile(path); err != nil {
		t.Fatal(err)
	}
	if want := []string{"x", "a/*", "b/*"}; !reflect.DeepEqual(w.IgnoreErrors, want) {
		t.Errorf("IgnoreErrors = %q, want %q", w.IgnoreErrors, want)
	}
}
