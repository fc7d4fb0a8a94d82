package resolver

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/events"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/multiarch"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/store"
)

// unchanged says, from one HEAD of the image's tag, that the store holds this very image under
// its name: the registry names the digest of the manifest the store recorded (computed from
// .metadata/<name>/manifest.json, kept byte for byte) or of the index the flattener recorded
// it was picked from (flatbed.json), and its flat tree and public path are there. It then
// returns the image as the store records it. A HEAD is a free request where a manifest GET
// counts against pull limits (Docker Hub), and it is not made at all for a name pinned to a
// digest. When nothing is recorded, or the HEAD fails for good, unchanged says no and the GET
// that follows says why; a temporary fault is returned for Do to try again.
func unchanged(st *store.Store, ref imageref.Ref, ro []remote.Option, multi bool) (*resolution, bool, error) {
	if multi {
		return unchangedMulti(st, ref, ro)
	}
	img, rec, ok := recorded(st, ref)
	if !ok {
		return nil, false, nil
	}
	digest, ok, err := tagDigest(ref, ro)
	if err != nil || !ok {
		return nil, false, err
	}
	switch {
	case digest == img.Digest:
	case rec != nil && digest == rec.IndexDigest && rec.ManifestDigest == img.Digest:
		img.IndexDigest, img.Platform = digest, cmp.Or(rec.Platform, multiarch.String(Host))
	default:
		return nil, false, nil
	}
	if img.Validate() != nil {
		return nil, false, nil
	}
	return &resolution{Descs: []*events.Description{{Image: img}}}, true, nil
}

// tagDigest is the digest the registry names for ref now: one HEAD of its tag, none for a
// name pinned to a digest. ok is false when the HEAD failed for good (the GET that follows
// says why); a temporary fault is returned for Do to try again.
func tagDigest(ref imageref.Ref, ro []remote.Option) (string, bool, error) {
	if ref.Digest != "" {
		return ref.Digest, true, nil
	}
	gref, err := ref.GGCR()
	if err != nil {
		return "", false, err
	}
	d, err := remote.Head(gref, ro...)
	if registry.Temporary(err) {
		return "", false, err
	}
	if err != nil {
		return "", false, nil
	}
	return d.Digest.String(), true, nil
}

// recorded is what the store records of ref's name when it holds a converted image there:
// the image its manifest describes, and the flattener's record (nil when there is none).
func recorded(st *store.Store, ref imageref.Ref) (events.Image, *lifecycle.Record, bool) {
	name := ref.Name()
	raw, err := os.ReadFile(st.ManifestPath(name))
	if err != nil || len(raw) > events.MaxManifestBytes {
		return events.Image{}, nil, false
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return events.Image{}, nil, false
	}
	sum := sha256.Sum256(raw)
	img := events.Image{
		Registry:   ref.Registry,
		Repository: ref.Repository,
		Tag:        ref.Tag,
		Name:       name,
		Digest:     "sha256:" + hex.EncodeToString(sum[:]),
		// Only an OCI manifest may leave its media type out.
		MediaType:    string(cmp.Or(m.MediaType, types.OCIManifestSchema1)),
		ConfigDigest: m.Config.Digest.String(),
		LayerCount:   len(m.Layers),
	}
	if !published(st, &img) {
		return events.Image{}, nil, false
	}
	rec, err := lifecycle.ReadRecord(st, name)
	if err != nil {
		rec = nil // unreadable: the manifest alone is compared
	}
	return img, rec, true
}
