package dumbremote

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"flatbed.dev/pkg/store"
)

// PushTo writes art (from Artifact) to ref with go-containerregistry, which asks the
// registry for each blob (HEAD) and uploads only those it lacks, and returns the digest
// written. An image kept as it is keeps its digest.
func PushTo(ref name.Reference, art remote.Taggable, ro ...remote.Option) (v1.Hash, error) {
	var err error
	switch a := art.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, a, ro...)
	case v1.Image:
		err = remote.Write(ref, a, ro...)
	default:
		err = fmt.Errorf("%T is neither an image nor an index", art)
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("writing %s: %w", ref, err)
	}
	d, err := art.(interface{ Digest() (v1.Hash, error) }).Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	return d, nil
}

// Platform picks the image of an index for a `docker load` archive, which holds images, not
// indexes: the one for this machine's platform (linux/GOARCH), or the only one.
func Platform(art remote.Taggable) (v1.Image, error) {
	switch a := art.(type) {
	case v1.Image:
		return a, nil
	case v1.ImageIndex:
		im, err := a.IndexManifest()
		if err != nil {
			return nil, err
		}
		want := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		var pick *v1.Descriptor
		for i, m := range im.Manifests {
			if m.MediaType.IsImage() && (len(im.Manifests) == 1 || m.Platform != nil && m.Platform.Satisfies(want)) {
				pick = &im.Manifests[i]
				break
			}
		}
		if pick == nil {
			return nil, fmt.Errorf("the index has no image for %s: an archive holds one image per name", want)
		}
		return a.Image(pick.Digest)
	}
	return nil, fmt.Errorf("%T is neither an image nor an index", art)
}

// WriteArchive writes images under their names to path as a tarball `docker load` and
// `podman load` read (manifest.json, each config as <hex>.json, each layer once), through a
// temporary file renamed into place. Layers stream from where the images keep them.
func WriteArchive(path string, images map[name.Tag]v1.Image) error {
	refs := map[name.Reference]v1.Image{}
	for t, img := range images {
		refs[t] = img
	}
	return store.WriteStreamAtomic(path, 0o644, func(w io.Writer) error {
		return tarball.MultiRefWrite(refs, w)
	})
}

// Import opens what s names on the remote (see Resolve) as an image or index.
func (r *Remote) Import(ctx context.Context, s string) (Resolved, remote.Taggable, error) {
	res, err := r.Resolve(ctx, s)
	if err != nil {
		return res, nil, err
	}
	art, err := r.Artifact(ctx, res.Descriptor)
	return res, art, err
}
