package store_test

import (
	"path/filepath"
	"testing"

	"flatbed.dev/pkg/store"
)

func TestOpenRefusesRepositoriesOutsideTheRoot(t *testing.T) {
	for _, repo := range []string{"", "/etc", "..", "../x", "a/../../x", "a/./b", "a//b", "a/", ".hidden/..", "a\x00b", "a b"} {
		if _, err := store.Open("/srv/store", repo); err == nil {
			t.Errorf("Open(%q) accepted", repo)
		}
	}
	st, err := store.Open("/srv/store", "unpacked.cern.ch/sub")
	if err != nil {
		t.Fatal(err)
	}
	if st.Root != filepath.Join("/srv/store", "unpacked.cern.ch/sub") {
		t.Errorf("Root = %s", st.Root)
	}
}

func TestCheckName(t *testing.T) {
	for _, bad := range []string{"", "/x", "a/../b", "../x", "a//b", "a/.", "r/x:1/.."} {
		if store.CheckName(bad) == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
	if err := store.CheckName("registry.example/library/ubuntu:22.04"); err != nil {
		t.Error(err)
	}
}
