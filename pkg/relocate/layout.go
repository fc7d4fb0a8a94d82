package relocate

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/pkg/imageref"
)

// Annotations of an OCI layout's index that name an image in full: image-relocation and
// duffle write the first, containerd the second. A ref.name without '/' is only a tag
// (skopeo, crane) and names nothing here.
var nameAnnotations = []string{"org.opencontainers.image.ref.name", "io.containerd.image.name"}

// LayoutImages lists the images the layout at p names in full, as written in its index.
func LayoutImages(p layout.Path) ([]string, error) {
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range im.Manifests {
		if n, ok := layoutName(d); ok {
			names = append(names, n)
		}
	}
	return names, nil
}

func layoutName(d v1.Descriptor) (string, bool) {
	for _, a := range nameAnnotations {
		if n := d.Annotations[a]; strings.Contains(n, "/") {
			return n, true
		}
	}
	return "", false
}

// openLayout finds src in the layout at p: by digest when src has one, anywhere in the
// layout's indexes; else by the name its index gives it.
func openLayout(p layout.Path, src imageref.Ref) (remote.Taggable, v1.Hash, error) {
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	holder, d := idx, v1.Descriptor{}
	var found bool
	if src.Digest != "" {
		h, err := v1.NewHash(src.Digest)
		if err != nil {
			return nil, v1.Hash{}, err
		}
		if holder, d, found, err = findDigest(idx, h); err != nil {
			return nil, v1.Hash{}, err
		}
	} else if d, found, err = findName(idx, src); err != nil {
		return nil, v1.Hash{}, err
	}
	if !found {
		return nil, v1.Hash{}, fmt.Errorf("not in the OCI layout %s", p)
	}
	if d.MediaType.IsIndex() {
		child, err := holder.ImageIndex(d.Digest)
		return child, d.Digest, err
	}
	img, err := holder.Image(d.Digest)
	return img, d.Digest, err
}

// findDigest returns the descriptor of h and the index that lists it, searching idx and the
// indexes it lists.
func findDigest(idx v1.ImageIndex, h v1.Hash) (v1.ImageIndex, v1.Descriptor, bool, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, v1.Descriptor{}, false, err
	}
	for _, d := range im.Manifests {
		if d.Digest == h {
			return idx, d, true, nil
		}
	}
	for _, d := range im.Manifests {
		if !d.MediaType.IsIndex() {
			continue
		}
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, v1.Descriptor{}, false, err
		}
		if holder, cd, ok, err := findDigest(child, h); ok || err != nil {
			return holder, cd, ok, err
		}
	}
	return nil, v1.Descriptor{}, false, nil
}

// findName finds the entry of the layout's index named src (tag "latest" when src has
// none); two entries of that name with different digests are an error.
func findName(idx v1.ImageIndex, src imageref.Ref) (v1.Descriptor, bool, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, false, err
	}
	var match v1.Descriptor
	var found bool
	for _, d := range im.Manifests {
		n, ok := layoutName(d)
		if !ok {
			continue
		}
		r, err := ParseImage(n)
		if err != nil || !sameImage(r, src) {
			continue
		}
		if found && match.Digest != d.Digest {
			return v1.Descriptor{}, false, fmt.Errorf("the layout names two manifests %s: %s and %s", dockerString(src), match.Digest, d.Digest)
		}
		match, found = d, true
	}
	return match, found, nil
}

// sameImage reports whether a and b are one repository and tag as docker reads them.
func sameImage(a, b imageref.Ref) bool {
	ah, ap := dockerName(a)
	bh, bp := dockerName(b)
	return ah == bh && ap == bp && tagOrLatest(a) == tagOrLatest(b)
}

func tagOrLatest(r imageref.Ref) string {
	if r.Tag == "" {
		return imageref.DefaultTag
	}
	return r.Tag
}
