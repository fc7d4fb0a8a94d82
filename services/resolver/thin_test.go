package resolver

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
)

// An image already converted whose wish pushes a thin image has its description readable by
// the thin pusher: from the store's manifest.json and config.json, else from the description
// store, else with one GET of its config blob. A wish without a thin image stores nothing.
func TestAlreadyConvertedKeepsItsDescriptionForTheThinImage(t *testing.T) {
	var log requestLog
	host := registrytest.Serve(t, log.wrap)
	pushDemo(t, host)
	hello := eventstest.Describe(t, demo(t, "demo/hello:1.0").Image, host, "demo/hello", "1.0")
	for _, tt := range []struct {
		name      string
		thin      bool
		config    []byte // .metadata/<name>/config.json; nil: none
		described bool   // the description store holds it already
		want      []string
		wantPuts  int
	}{
		{"config kept in the store", true, hello.RawConfig, false, []string{"HEAD manifest"}, 1},
		{"config kept in the store is another", true, []byte(`{"rootfs":{"diff_ids":[]}}`), false, []string{"HEAD manifest", "GET manifest", "GET blob"}, 1},
		{"no config kept, described before", true, nil, true, []string{"HEAD manifest"}, 0},
		{"no config kept, not described", true, nil, false, []string{"HEAD manifest", "GET manifest", "GET blob"}, 1},
		{"no thin image wanted", false, nil, false, []string{"HEAD manifest"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, b := newService(t)
			job := eventstest.Job("http://" + host + "/demo/hello:1.0")
			if tt.thin {
				job.ThinImage = "http://" + host + "/unpacked/hello:1.0"
			}
			st := store.New(filepath.Join(s.StoreRoot, job.CvmfsRepo))
			imgName := host + "/demo/hello:1.0"
			writeStore(t, st, imgName, hello.Image.ConfigDigest, storeState{manifest: hello.Manifest, flat: true, public: true})
			if tt.config != nil {
				if _, err := store.WriteFileAtomic(filepath.Join(st.MetadataDir(imgName), lifecycle.ConfigFile), tt.config, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.described {
				if err := descsOf(s).Descriptions.Put(context.Background(), hello); err != nil {
					t.Fatal(err)
				}
			}
			log.take(true)
			r := resolved(t, s, b, job)
			if got := log.take(false); strings.Join(got, ", ") != strings.Join(tt.want, ", ") {
				t.Errorf("asked the registry %q, want %q", got, tt.want)
			}
			if !r.AlreadyConverted {
				t.Fatalf("AlreadyConverted = false")
			}
			if got := len(descsOf(s).puts); got != tt.wantPuts {
				t.Errorf("%d descriptions stored, want %d", got, tt.wantPuts)
			}
			if !tt.thin {
				return
			}
			d, err := s.Descriptions.Get(context.Background(), r.Image)
			if err != nil {
				t.Fatalf("the thin pusher cannot read the description: %v", err)
			}
			if len(d.Layers) != len(hello.Layers) || string(d.RawConfig) != string(hello.RawConfig) {
				t.Errorf("description = %d layers, config %q", len(d.Layers), d.RawConfig)
			}
			if got := b.Types(); len(got) != 1 || got[0] != events.ImageResolvedType {
				t.Errorf("published %v, want image.resolved alone", got)
			}
		})
	}
}
