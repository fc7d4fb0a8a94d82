package events_test

import (
	"encoding/json"
	"errors"
	"testing"

	"flatbed.dev/events"
)

func samplePlatforms() []events.Image {
	amd, arm := sampleImage(), sampleImage()
	amd.IndexDigest, amd.Platform = "sha256:"+string(make64('c')), "linux/amd64"
	arm.IndexDigest, arm.Platform = amd.IndexDigest, "linux/arm64/v8"
	arm.Digest, arm.ConfigDigest = "sha256:"+string(make64('d')), "sha256:"+string(make64('e'))
	return []events.Image{amd, arm}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}

// The platforms of a multi-arch image.resolved and image.flattened are bounded, each a valid
// image of the same name and index, the event's image one of them.
func TestCheckPlatforms(t *testing.T) {
	good := func() events.ImageFlattened {
		ps := samplePlatforms()
		e := events.ImageFlattened{Job: sampleJob(), Image: ps[0], FlatPath: ".flat/aa/x", PublicPath: ps[0].Name}
		for _, p := range ps {
			e.Platforms = append(e.Platforms, events.FlatPlatform{Image: p, FlatPath: ".flat/" + p.ConfigDigest[7:9] + "/" + p.ConfigDigest[7:],
				Path: ".multiarch/x/" + p.Name})
		}
		return e
	}
	check := func(e events.ImageFlattened) error {
		b, _ := json.Marshal(e)
		_, err := events.Check(events.ImageFlattenedType, b)
		return err
	}
	if err := check(good()); err != nil {
		t.Fatalf("a good event is refused: %v", err)
	}
	for name, mutate := range map[string]func(e *events.ImageFlattened){
		"another name": func(e *events.ImageFlattened) {
			e.Platforms[1].Image.Tag = "2"
			e.Platforms[1].Image.Name = "r.example/x:2"
		},
		"another index":    func(e *events.ImageFlattened) { e.Platforms[1].Image.IndexDigest = "sha256:" + string(make64('f')) },
		"platform twice":   func(e *events.ImageFlattened) { e.Platforms[1].Image.Platform = "linux/amd64" },
		"image not listed": func(e *events.ImageFlattened) { e.Image.Digest = "sha256:" + string(make64('9')) },
		"flat path ..":     func(e *events.ImageFlattened) { e.Platforms[1].FlatPath = ".flat/../../etc" },
		"path elsewhere":   func(e *events.ImageFlattened) { e.Platforms[1].Path = "etc/passwd" },
		"too many": func(e *events.ImageFlattened) {
			for len(e.Platforms) <= events.MaxPlatforms {
				e.Platforms = append(e.Platforms, e.Platforms[1])
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := good()
			mutate(&e)
			if err := check(e); !errors.Is(err, events.ErrInvalid) {
				t.Errorf("Check = %v, want ErrInvalid", err)
			}
		})
	}
	r := events.ImageResolved{Job: sampleJob(), Image: samplePlatforms()[1], Platforms: samplePlatforms()}
	if err := r.Validate(); err != nil {
		t.Errorf("a good image.resolved is refused: %v", err)
	}
	r.Platforms[0].Name = "r.example/other:1"
	if err := r.Validate(); err == nil {
		t.Error("an image.resolved whose platforms name another image is accepted")
	}
}

// An index wished by digest names the image by the index's digest, the manifest picked from
// it by its own.
func TestImageNamedByIndexDigest(t *testing.T) {
	img := samplePlatforms()[1]
	img.Tag, img.Name = "", img.Registry+"/"+img.Repository+"@"+img.IndexDigest
	if err := img.Validate(); err != nil {
		t.Errorf("an image named by its index's digest is refused: %v", err)
	}
	img.IndexDigest = ""
	if err := img.Validate(); err == nil {
		t.Error("an image named by a digest that is neither its own nor its index's is accepted")
	}
}

// image.deleted of a multi-arch image lists its platforms' links and records, and nothing
// outside them.
func TestImageDeletedPlatforms(t *testing.T) {
	name := "r.example/x:1"
	e := events.ImageDeleted{CvmfsRepo: "unpacked.example.org", Name: name,
		Removed: []string{name, ".metadata/" + name, ".multiarch/amd64/" + name, ".metadata/.multiarch/arm64:v8/" + name}}
	if err := e.Validate(); err != nil {
		t.Errorf("a multi-arch image.deleted is refused: %v", err)
	}
	for _, bad := range []string{".multiarch/../" + name, ".multiarch/a/b/" + name, ".multiarch/amd64/r.example/y:1", ".flat/aa/" + name} {
		e.Removed = []string{bad}
		if err := e.Validate(); err == nil {
			t.Errorf("image.deleted removing %q is accepted", bad)
		}
	}
}
