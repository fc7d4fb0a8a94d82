package relocate

import (
	"bytes"
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/pkg/imageref"
)

// Copy copies the image or index src names (its digest when it has one, else its tag, else
// "latest"), from its registry or FromLayout's layout, to dst byte for byte: the manifest or
// index as served, every manifest it lists, every config and layer, mounting blobs from src's
// repository when both are on one registry. dst is written under its tag (else "latest"), or
// only under its digest when it has no tag. Copy then reads the target's digest back, and that
// of each manifest an index lists, and fails with a *DigestError (ErrDigestChanged) naming the
// image when one differs from the source's. It returns the digest copied.
func Copy(ctx context.Context, src, dst imageref.Ref, opts ...Option) (v1.Hash, error) {
	o := build(opts)
	ro := o.remoteOptions(ctx)
	var art remote.Taggable
	var want v1.Hash
	var err error
	if o.layout != "" {
		art, want, err = openLayout(o.layout, src)
	} else {
		art, want, err = openRemote(src, ro)
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("reading %s: %w", dockerString(src), err)
	}
	if err := checkRaw(art, want); err != nil {
		return v1.Hash{}, fmt.Errorf("reading %s: %w", dockerString(src), err)
	}
	target, err := pushRef(dst)
	if err != nil {
		return v1.Hash{}, err
	}
	if dst.Digest != "" && dst.Digest != want.String() {
		return v1.Hash{}, &DigestError{Image: dockerString(src), Target: dockerString(dst), Want: want,
			Err: fmt.Errorf("the target is named with digest %s", dst.Digest)}
	}
	switch a := art.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(target, a, ro...)
	case v1.Image:
		err = remote.Write(target, a, ro...)
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("copying %s to %s: %w", dockerString(src), dockerString(dst), err)
	}
	v := verifier{image: dockerString(src), target: dockerString(dst), ro: ro}
	if err := v.check(target, art, want); err != nil {
		return v1.Hash{}, err
	}
	return want, nil
}

// openRemote fetches what src names from its registry: an index or an image whose raw
// manifest is the registry's bytes.
func openRemote(src imageref.Ref, ro []remote.Option) (remote.Taggable, v1.Hash, error) {
	if src.Tag == "" && src.Digest == "" {
		src = src.WithTag(imageref.DefaultTag)
	}
	ref, err := src.GGCR()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	desc, err := remote.Get(ref, ro...)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if desc.MediaType.IsSchema1() {
		return nil, v1.Hash{}, fmt.Errorf("it is a Docker schema 1 manifest (%s), which registries no longer accept", desc.MediaType)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		return idx, desc.Digest, err
	}
	img, err := desc.Image()
	return img, desc.Digest, err
}

// checkRaw makes sure the bytes to be written are those of the digest to be preserved.
func checkRaw(art remote.Taggable, want v1.Hash) error {
	raw, err := art.RawManifest()
	if err != nil {
		return err
	}
	got, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("its manifest hashes to %s, not %s", got, want)
	}
	return nil
}

// pushRef is where dst is written: its tag when it has one (its digest is then checked
// after the push), else its digest, else "latest".
func pushRef(dst imageref.Ref) (name.Reference, error) {
	switch {
	case dst.Tag != "":
		dst.Digest = ""
	case dst.Digest == "":
		dst.Tag = imageref.DefaultTag
	}
	return dst.GGCR()
}
