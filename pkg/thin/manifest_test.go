package thin

import (
	"reflect"
	"strings"
	"testing"
)

const (
	hexA = "ab11111111111111111111111111111111111111111111111111111111111111"
	hexB = "cd22222222222222222222222222222222222222222222222222222222222222"
)

func TestNew(t *testing.T) {
	tests := []struct {
		repo    string
		digests []string
		want    []Layer
	}{
		{"unpacked.cern.ch", []string{"sha256:" + hexA, hexB}, []Layer{
			{hexA, "cvmfs://unpacked.cern.ch/.layers/ab/" + hexA + "/layerfs"},
			{hexB, "cvmfs://unpacked.cern.ch/.layers/cd/" + hexB + "/layerfs"},
		}},
		{"unpacked.cern.ch/sub/dir/", []string{hexA}, []Layer{
			{hexA, "cvmfs://unpacked.cern.ch/sub/dir/.layers/ab/" + hexA + "/layerfs"},
		}},
		{"r.cern.ch", nil, []Layer{}},
	}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			got := New("https://registry.hub.docker.com/library/redis:4", tt.repo, tt.digests)
			if got.Version != "1.0" || got.Origin != "https://registry.hub.docker.com/library/redis:4" {
				t.Errorf("Version, Origin = %q, %q", got.Version, got.Origin)
			}
			if !reflect.DeepEqual(got.Layers, tt.want) {
				t.Errorf("Layers = %+v, want %+v", got.Layers, tt.want)
			}
		})
	}
}

func TestMarshal(t *testing.T) {
	m := New("https://registry.hub.docker.com/library/redis:4", "unpacked.cern.ch", []string{"sha256:" + hexA})
	got, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`{`,
		`  "version": "1.0",`,
		`  "origin": "https://registry.hub.docker.com/library/redis:4",`,
		`  "layers": [`,
		`    {`,
		`      "digest": "` + hexA + `",`,
		`      "url": "cvmfs://unpacked.cern.ch/.layers/ab/` + hexA + `/layerfs"`,
		`    }`,
		`  ]`,
		`}`,
	}, "\n")
	if string(got) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", got, want)
	}
	back, err := Unmarshal(got)
	if err != nil || !reflect.DeepEqual(back, m) {
		t.Errorf("Unmarshal(Marshal(m)) = %+v, %v; want %+v", back, err, m)
	}
	if _, err := Unmarshal([]byte("{")); err == nil {
		t.Error("Unmarshal of bad JSON: no error")
	}
}

// DUCC's ThinImage (ducc/docker-api/util.go) has two optional keys, min_version and comment,
// written after version and after layers, and left out when empty. A thin.json that carries
// them is read and written back byte for byte.
func TestOptionalKeysAsDUCCWritesThem(t *testing.T) {
	m := New("https://registry.hub.docker.com/library/redis:4", "unpacked.cern.ch", []string{"sha256:" + hexA})
	m.MinVersion = "1.0"
	m.Comment = "converted by flatbed"
	got, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		`{`,
		`  "version": "1.0",`,
		`  "min_version": "1.0",`,
		`  "origin": "https://registry.hub.docker.com/library/redis:4",`,
		`  "layers": [`,
		`    {`,
		`      "digest": "` + hexA + `",`,
		`      "url": "cvmfs://unpacked.cern.ch/.layers/ab/` + hexA + `/layerfs"`,
		`    }`,
		`  ],`,
		`  "comment": "converted by flatbed"`,
		`}`,
	}, "\n")
	if string(got) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", got, want)
	}
	back, err := Unmarshal(got)
	if err != nil || !reflect.DeepEqual(back, m) {
		t.Errorf("Unmarshal(Marshal(m)) = %+v, %v; want %+v", back, err, m)
	}
	again, err := Marshal(back)
	if err != nil || string(again) != want {
		t.Errorf("written back:\n%s\n(%v), want it unchanged", again, err)
	}
	// As DUCC writes one (compact, its key order): every key is read.
	ducc := `{"version":"1.0","min_version":"0.9","origin":"o","layers":[{"digest":"` + hexA + `"}],"comment":"c"}`
	r, err := Unmarshal([]byte(ducc))
	if err != nil {
		t.Fatal(err)
	}
	if r.MinVersion != "0.9" || r.Comment != "c" || r.Version != "1.0" || r.Origin != "o" || len(r.Layers) != 1 || r.Layers[0].URL != "" {
		t.Errorf("Unmarshal(DUCC's thin.json) = %+v", r)
	}
	// Empty, neither key is written (DUCC's omitempty).
	plain, _ := Marshal(New("o", "r.cern.ch", nil))
	if strings.Contains(string(plain), "min_version") || strings.Contains(string(plain), "comment") {
		t.Errorf("empty optional keys written: %s", plain)
	}
}
