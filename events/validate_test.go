package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"flatbed.dev/events"
)

// Every field a stage turns into a path, a registry address or an argument is refused when it
// could reach outside what it names.
func TestCheckRefusesHostileFields(t *testing.T) {
	good := func() events.LayerRequested {
		return events.LayerRequested{Job: sampleJob(), Image: sampleImage(), Index: 0, Layer: sampleLayer()}
	}
	for name, mutate := range map[string]func(e *events.LayerRequested){
		"repo with ..":         func(e *events.LayerRequested) { e.Job.CvmfsRepo = "../../etc" },
		"repo absolute":        func(e *events.LayerRequested) { e.Job.CvmfsRepo = "/etc" },
		"repo inner ..":        func(e *events.LayerRequested) { e.Job.CvmfsRepo = "unpacked.cern.ch/../../x" },
		"repo empty":           func(e *events.LayerRequested) { e.Job.CvmfsRepo = "" },
		"wish id with slash":   func(e *events.LayerRequested) { e.Job.WishID = "../x" },
		"image with newline":   func(e *events.LayerRequested) { e.Job.Image = "http://r/x:1\nX" },
		"name traversal":       func(e *events.LayerRequested) { e.Image.Name = "r.example/../../etc:1" },
		"repository ..":        func(e *events.LayerRequested) { e.Image.Repository = "../etc"; e.Image.Name = "r.example/../etc:1" },
		"registry ..":          func(e *events.LayerRequested) { e.Image.Registry = ".."; e.Image.Name = "../x:1" },
		"tag with slash":       func(e *events.LayerRequested) { e.Image.Tag = "a/../../b"; e.Image.Name = "r.example/x:a/../../b" },
		"name not its parts":   func(e *events.LayerRequested) { e.Image.Name = "r.example/y:1" },
		"config digest path":   func(e *events.LayerRequested) { e.Image.ConfigDigest = "sha256:../../../etc" },
		"layer digest path":    func(e *events.LayerRequested) { e.Layer.Digest = "sha256:../../x" },
		"layer size 0":         func(e *events.LayerRequested) { e.Layer.Size = 0 },
		"index out of range":   func(e *events.LayerRequested) { e.Index = 1 },
		"negative index":       func(e *events.LayerRequested) { e.Index = -1 },
		"too many layers":      func(e *events.LayerRequested) { e.Image.LayerCount = events.MaxLayers + 1 },
		"media type injection": func(e *events.LayerRequested) { e.Layer.MediaType = "a/b; rm -rf" },
		"index digest path": func(e *events.LayerRequested) {
			e.Image.IndexDigest = "sha256:../../x"
			e.Image.Platform = "linux/amd64"
		},
		"platform arch ..": func(e *events.LayerRequested) {
			e.Image.IndexDigest = "sha256:" + strings.Repeat("e", 64)
			e.Image.Platform = "linux/.."
		},
		"platform variant .": func(e *events.LayerRequested) {
			e.Image.IndexDigest = "sha256:" + strings.Repeat("e", 64)
			e.Image.Platform = "linux/arm64/."
		},
		"index, no platform": func(e *events.LayerRequested) {
			e.Image.IndexDigest = "sha256:" + strings.Repeat("e", 64)
			e.Image.Platform = ""
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := good()
			mutate(&e)
			b, _ := json.Marshal(e)
			if _, err := events.Check(events.LayerRequestedType, b); !errors.Is(err, events.ErrInvalid) {
				t.Errorf("Check = %v, want ErrInvalid", err)
			}
		})
	}
	b, _ := json.Marshal(good())
	v, err := events.Check(events.LayerRequestedType, b)
	if err != nil {
		t.Fatalf("valid event refused: %v", err)
	}
	if got := v.(*events.LayerRequested); got.Layer != sampleLayer() {
		t.Errorf("decoded %+v", got)
	}
}

func TestSalvageKeepsOnlyWhatIsWellFormed(t *testing.T) {
	data := `{"job":{"wish_id":"w1","correlation_id":"c1","image":"http://r.example/x:1","cvmfs_repo":"../../etc"},"image":{"name":"../x"}}`
	job, img, ok := events.Salvage([]byte(data), "", "", "")
	if !ok || job.WishID != "w1" || job.CorrelationID != "c1" || job.Image != "http://r.example/x:1" || job.CvmfsRepo != "" || img != nil {
		t.Errorf("Salvage = %+v, %+v, %v", job, img, ok)
	}
	job, _, ok = events.Salvage([]byte("garbage"), "w2", "", "http://r.example/y:2")
	if !ok || job.WishID != "w2" || job.CorrelationID != "w2" || job.Image != "http://r.example/y:2" {
		t.Errorf("Salvage from headers = %+v, %v", job, ok)
	}
	if _, _, ok := events.Salvage([]byte("garbage"), "../bad", "", ""); ok {
		t.Error("Salvage found a wish in an invalid id")
	}
}

func TestDescribeChecksDigests(t *testing.T) {
	manifest := []byte(`{"schemaVersion":2,"config":{"digest":"CFG"},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:` + strings.Repeat("c", 64) + `","size":10}]}`)
	config := []byte(`{"config":{"Env":["A=1"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("d", 64) + `"]}}`)
	cfgDigest := digestOf(config)
	manifest = []byte(strings.Replace(string(manifest), "CFG", cfgDigest, 1))
	img := sampleImage()
	img.Digest, img.ConfigDigest = digestOf(manifest), cfgDigest
	d, err := events.Describe(img, manifest, config)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Layers) != 1 || d.Layers[0].Size != 10 || d.Config.Env[0] != "A=1" || d.Layers[0].DiffID != "sha256:"+strings.Repeat("d", 64) {
		t.Errorf("Describe = %+v", d)
	}
	other := img
	other.Digest = "sha256:" + strings.Repeat("e", 64)
	if _, err := events.Describe(other, manifest, config); err == nil {
		t.Error("a manifest that is not the one the image names was accepted")
	}
	other = img
	other.LayerCount = 2
	if _, err := events.Describe(other, manifest, config); err == nil {
		t.Error("a wrong layer count was accepted")
	}
	if _, err := events.Describe(img, manifest, append(config, ' ')); err == nil {
		t.Error("a config that is not the one the image names was accepted")
	}
}
