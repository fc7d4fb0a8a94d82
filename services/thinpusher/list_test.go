package thinpusher

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/registry/registrytest"
	"flatbed.dev/pkg/store"
	"flatbed.dev/pkg/thin"
)

// A multi-arch image's thin image is a manifest list under the thin name whose entries are
// the platforms' thin images, each with its platform, its own thin.json and its own Env.
func TestPushManifestList(t *testing.T) {
	host := registrytest.Serve(t, nil)
	n := imagegen.MultiArch(false)
	idx, _ := n.Index.Digest()
	descs := &eventstest.Descriptions{}
	b := &eventstest.Bus{}
	s := &Service{Bus: b, Log: quietLog(), Registry: registrytest.Options(), MaxAttempts: 3, Descriptions: descs}
	job := eventstest.Job("https://registry.example/multiarch/tool:1")
	job.MultiArch, job.ThinImage = true, "http://"+host+"/multiarch/tool_thin:1"
	in := events.ImageFlattened{Job: job, PublicPath: "registry.example/multiarch/tool:1"}
	for _, p := range []string{"linux/amd64", "linux/arm64/v8"} {
		d := eventstest.Describe(t, n.Images[p], "registry.example", "multiarch/tool", "1")
		d.Image.Platform, d.Image.IndexDigest = p, idx.String()
		if err := descs.Put(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		hex := store.Hex(d.Image.ConfigDigest)
		in.Platforms = append(in.Platforms, events.FlatPlatform{Image: d.Image, FlatPath: ".flat/" + hex[:2] + "/" + hex, Path: ".multiarch/x/" + d.Image.Name})
	}
	in.Image, in.FlatPath = in.Platforms[0].Image, in.Platforms[0].FlatPath
	if err := handle(t, s, in, 1); err != nil {
		t.Fatal(err)
	}
	pushed := eventstest.Decode[events.ThinPushed](t, b.OfType(events.ThinPushedType)[0])
	ref, _ := name.ParseReference(host+"/multiarch/tool_thin:1", name.Insecure)
	got, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d.String() != pushed.ThinDigest || im.MediaType != types.DockerManifestList || len(im.Manifests) != 2 {
		t.Fatalf("thin tag holds %s (%s, %d entries), thin.pushed says %s", d, im.MediaType, len(im.Manifests), pushed.ThinDigest)
	}
	for i, want := range []string{"amd64", "arm64"} {
		e := im.Manifests[i]
		if e.Platform == nil || e.Platform.Architecture != want {
			t.Errorf("entry %d: platform %v, want %s", i, e.Platform, want)
			continue
		}
		img, err := got.Image(e.Digest)
		if err != nil {
			t.Fatal(err)
		}
		m, err := thin.Read(img)
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		layers, _ := n.Images[in.Platforms[i].Image.Platform].Layers()
		last, _ := layers[len(layers)-1].Digest()
		if !strings.Contains(m.Layers[len(m.Layers)-1].Digest, last.Hex) {
			t.Errorf("%s: thin.json's last layer %s is not the platform's %s", want, m.Layers[len(m.Layers)-1].Digest, last.Hex)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != want || !strings.Contains(strings.Join(cf.Config.Env, " "), "ARCH="+want) {
			t.Errorf("%s: thin config %s with Env %v", want, cf.Architecture, cf.Config.Env)
		}
	}
}
