package imagegen

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The multi-arch test index: one repository, two tags.
const (
	MultiArchName       = "multiarch/tool"
	MultiArchTag        = "1"       // linux/amd64 and linux/arm64/v8, both convertible
	MultiArchHostileTag = "hostile" // the arm64/v8 image carries a layer escaping its root
)

// MultiArchPlatforms are the index's platforms, in its order.
var MultiArchPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
}

// IndexNamed is an index with the repository path and tag it is published under, and its
// images by platform ("linux/amd64", "linux/arm64/v8").
type IndexNamed struct {
	Name, Tag string
	Index     v1.ImageIndex
	Images    map[string]v1.Image
}

// Ref returns "Name:Tag".
func (n IndexNamed) Ref() string { return n.Name + ":" + n.Tag }

// MultiArch is a two-platform OCI index (linux/amd64, linux/arm64/v8) whose images share a
// base layer and differ in a platform layer: /etc/arch names the architecture, /bin/tool
// prints it, and each config's Env has ARCH=<arch> (and a PATH). With hostile, the arm64
// image gets a last layer writing outside its root (see Hostile): that platform must fail.
func MultiArch(hostile bool) IndexNamed {
	tag := MultiArchTag
	if hostile {
		tag = MultiArchHostileTag
	}
	out := IndexNamed{Name: MultiArchName, Tag: tag, Images: map[string]v1.Image{}}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range MultiArchPlatforms {
		arch := p.Architecture
		spec := imageSpec{name: MultiArchName, tag: tag, env: []string{"PATH=/usr/bin:/bin", "ARCH=" + arch}, cmd: []string{"/bin/tool"},
			layers: []layerSpec{demoBase(), {comment: "platform " + arch, entries: []ent{
				dir("etc", 0o755),
				file("etc/arch", arch+"\n", 0o644),
				dir("bin", 0o755),
				file("bin/tool", "#!/bin/sh\necho "+arch+"\n", 0o755),
				file("bin/only-"+arch, arch+" only\n", 0o644),
			}}}}
		img, err := build(spec)
		if err == nil {
			img, err = withPlatform(img, p)
		}
		if err == nil && hostile && arch == "arm64" {
			img, err = appendRaw(img, tarLayer(file(HostileUp+"etc/x", HostilePayload, 0o644)))
		}
		if err != nil {
			panic("imagegen: multi-arch " + arch + ": " + err.Error())
		}
		pl := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pl}})
		out.Images[platformString(p)] = img
	}
	out.Index = idx
	return out
}

func withPlatform(img v1.Image, p v1.Platform) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	return mutate.ConfigFile(img, cf)
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// PushIndex writes the index, with its images, to registry (host:port, plain http) as
// registry/Name:Tag.
func PushIndex(ctx context.Context, registry string, n IndexNamed) error {
	ref, err := name.ParseReference(registry+"/"+n.Ref(), name.Insecure)
	if err != nil {
		return fmt.Errorf("imagegen: parse %s: %w", n.Ref(), err)
	}
	if err := remote.WriteIndex(ref, n.Index, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("imagegen: push %s: %w", ref, err)
	}
	return nil
}
