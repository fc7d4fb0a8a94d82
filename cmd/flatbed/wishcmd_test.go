package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"flatbed.dev/services/frontdoor"
)

// `flatbed wish add` sends what its flags say (multi-arch, convert again, the outputs and
// their settings) to the front door's API, CVMFS_REPO being needed only for the store.
func TestWishAddFlags(t *testing.T) {
	var got []frontdoor.WishRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/api/v1/wishes" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		var req frontdoor.WishRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = append(got, req)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(frontdoor.WishView{Wish: frontdoor.Wish{ID: frontdoor.Key(req.CvmfsRepo, req.Image), Image: req.Image,
			CvmfsRepo: req.CvmfsRepo, WishOptions: req.WishOptions}})
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := []string{"--url", srv.URL, "--token-file", tokenFile}
	tests := []struct {
		args []string
		want frontdoor.WishRequest
		out  string
	}{
		{[]string{"http://r.example/a:1", "unpacked.example.org", "-i"},
			frontdoor.WishRequest{Image: "http://r.example/a:1", CvmfsRepo: "unpacked.example.org", SkipThin: true}, "-> unpacked.example.org"},
		{[]string{"http://r.example/a:1", "unpacked.example.org", "-m", "-g", "-p", "--output", "unpacked,thin,lazy", "--output", "exported",
			"--lazy-image", "http://r.example/lazy/a:1", "--lazy-format", "zstd-chunked", "--lazy-oci", "--lazy-referrer", "--lazy-prioritized", "/bin/sh",
			"--export-remote", "dir:///srv/remote", "--export-compress", "zstd"},
			frontdoor.WishRequest{Image: "http://r.example/a:1", CvmfsRepo: "unpacked.example.org", WishOptions: frontdoor.WishOptions{
				MultiArch: true, ConvertAgain: true, SkipPodman: true, Outputs: []string{"unpacked", "thin", "lazy", "exported"},
				LazyImage: "http://r.example/lazy/a:1", LazyFormat: "zstd-chunked", LazyOCI: true, LazyReferrer: true, LazyPrioritized: []string{"/bin/sh"},
				ExportRemote: "dir:///srv/remote", ExportCompress: "zstd"}}, "-> unpacked, thin, lazy, exported (unpacked.example.org)"},
		{[]string{"http://r.example/a:1", "--output", "relocated", "--relocate-prefix", "r.example/mirror", "--relocate-no-flatten"},
			frontdoor.WishRequest{Image: "http://r.example/a:1", WishOptions: frontdoor.WishOptions{Outputs: []string{"relocated"},
				RelocatePrefix: "r.example/mirror", RelocateNoFlatten: true}}, "-> relocated"},
	}
	for i, tt := range tests {
		var out, errb bytes.Buffer
		if code := run(context.Background(), append(append([]string{"wish", "add"}, tt.args...), cli...), &out, &errb); code != 0 {
			t.Fatalf("%v: status %d: %s", tt.args, code, errb.String())
		}
		if len(got) != i+1 || !reflect.DeepEqual(got[i], tt.want) {
			t.Errorf("%v: sent %+v\nwant %+v", tt.args, got[len(got)-1], tt.want)
		}
		if !strings.Contains(out.String(), tt.out) {
			t.Errorf("%v: printed %q, want %q in it", tt.args, out.String(), tt.out)
		}
	}
}

// `flatbed status` shows each image's outputs with their states.
func TestStatusShowsOutputs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(frontdoor.ImageList{Images: []frontdoor.Image{{ID: "0123456789abcdef01234567", Image: "http://r.example/a:1",
			State: frontdoor.StateRunning, Outputs: []frontdoor.Output{{Name: "unpacked", State: frontdoor.OutputDone, Result: "r.example/a:1"},
				{Name: "lazy", State: frontdoor.OutputPending}}}}})
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"status", "--url", srv.URL, "--token-file", tokenFile}, &out, &errb); code != 0 {
		t.Fatalf("status %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "OUTPUTS") || !strings.Contains(out.String(), "unpacked:done lazy:pending") {
		t.Errorf("flatbed status printed:\n%s", out.String())
	}
}
