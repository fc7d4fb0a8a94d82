package dumbremote

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/relocate"
)

// RefNameAnnotation carries a reference's name, registry/repository:tag, in its descriptor
// (the annotation OCI image layouts use in index.json).
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// Resolved is an image on the remote: its name and the descriptor of its manifest or index.
type Resolved struct {
	Name       imageref.Ref // registry, repository, tag (when resolved by one) and digest
	Descriptor v1.Descriptor
}

func refKey(name imageref.Ref) string {
	return "refs/" + name.Registry + "/" + name.Repository + "/" + name.Tag
}

// idRe is an image id or a prefix of one, as docker shows them: sha256:<hex> or <hex>, at
// least 6 hex digits.
var idRe = regexp.MustCompile(`^(sha256:)?([0-9a-f]{6,64})$`)

// Resolve finds what s names on the remote: an image id or a prefix of one (a manifest, index
// or config digest, with or without "sha256:"), or an image name as docker writes it
// (redis is docker.io/library/redis:latest; http://host:port/repo:tag names host:port's),
// by tag or by digest. Neither looks at more than one reference or one shard of ids.
func (r *Remote) Resolve(ctx context.Context, s string) (Resolved, error) {
	if m := idRe.FindStringSubmatch(s); m != nil {
		res, err := r.resolveID(ctx, m[2])
		// "sha256:…" is only an id; bare hex may also be a Docker Hub name ("abcdef").
		if err == nil || !errors.Is(err, errNotFound) || m[1] != "" {
			return res, err
		}
	}
	name, err := relocate.ParseImage(s)
	if err != nil {
		return Resolved{}, err
	}
	if name.Digest != "" {
		h, err := v1.NewHash(name.Digest)
		if err != nil {
			return Resolved{}, err
		}
		ok, err := r.HasBlob(ctx, h)
		if err != nil {
			return Resolved{}, err
		}
		if !ok {
			return Resolved{}, fmt.Errorf("%s is not on %s: %w", s, r, errNotFound)
		}
		raw, err := r.ReadBlob(ctx, h)
		if err != nil {
			return Resolved{}, err
		}
		mt, err := manifestMediaType(raw)
		if err != nil {
			return Resolved{}, fmt.Errorf("%s on %s: %w", s, r, err)
		}
		return Resolved{Name: name, Descriptor: v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}}, nil
	}
	if name.Tag == "" {
		name.Tag = imageref.DefaultTag
	}
	var d v1.Descriptor
	if err := r.readSmall(ctx, refKey(name), &d); err != nil {
		if errors.Is(err, errNotFound) {
			return Resolved{}, fmt.Errorf("%s is not on %s (no reference %s): %w", s, r, refKey(name), err)
		}
		return Resolved{}, err
	}
	name.Digest = d.Digest.String()
	return Resolved{Name: name, Descriptor: d}, nil
}

// resolveID finds the one image whose id starts with prefix, listing one shard of ids/.
func (r *Remote) resolveID(ctx context.Context, prefix string) (Resolved, error) {
	keys, err := r.b.list(ctx, "ids/"+prefix[:2]+"/")
	if err != nil {
		return Resolved{}, err
	}
	var found []Resolved
	for _, k := range keys {
		if !strings.HasPrefix(k, "ids/"+prefix[:2]+"/"+prefix) {
			continue
		}
		var d v1.Descriptor
		if err := r.readSmall(ctx, k, &d); err != nil {
			return Resolved{}, err
		}
		if slices.ContainsFunc(found, func(f Resolved) bool { return f.Descriptor.Digest == d.Digest }) {
			continue
		}
		name, err := relocate.ParseImage(d.Annotations[RefNameAnnotation])
		if err != nil {
			return Resolved{}, fmt.Errorf("%s on %s names %q: %w", k, r, d.Annotations[RefNameAnnotation], err)
		}
		name.Digest = d.Digest.String()
		found = append(found, Resolved{Name: name, Descriptor: d})
	}
	switch len(found) {
	case 0:
		return Resolved{}, fmt.Errorf("no image id on %s starts with %s: %w", r, prefix, errNotFound)
	case 1:
		return found[0], nil
	}
	var names []string
	for _, f := range found {
		names = append(names, f.Name.Registry+"/"+f.Name.Repository+f.Name.Reference())
	}
	return Resolved{}, fmt.Errorf("the id prefix %s is ambiguous on %s: %s; give more of it", prefix, r, strings.Join(names, ", "))
}

// IsNotFound reports whether err says an image or blob is not on the remote.
func IsNotFound(err error) bool { return errors.Is(err, errNotFound) }

// manifestMediaType is the media type a manifest or index says it has.
func manifestMediaType(raw []byte) (types.MediaType, error) {
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests []any           `json:"manifests"`
		Config    *any            `json:"config"`
	}
	if err := jsonUnmarshal(raw, &m); err != nil {
		return "", fmt.Errorf("not a manifest or index: %w", err)
	}
	switch {
	case m.MediaType != "":
		return m.MediaType, nil
	case m.Manifests != nil:
		return types.OCIImageIndex, nil
	case m.Config != nil:
		return types.OCIManifestSchema1, nil
	}
	return "", errors.New("not a manifest or index: it has no mediaType, config or manifests")
}

// writeRef points name (with a tag) at desc, and the ids at it, after what desc names is on
// the remote whole, then rebuilds index.json.
func (r *Remote) writeRef(ctx context.Context, name imageref.Ref, desc v1.Descriptor, ids []v1.Hash) error {
	d := desc
	d.Annotations = map[string]string{RefNameAnnotation: name.Registry + "/" + name.Repository + name.Reference()}
	if name.Tag != "" {
		d.Annotations[RefNameAnnotation] = name.Registry + "/" + name.Repository + ":" + name.Tag
	}
	for _, id := range append([]v1.Hash{desc.Digest}, ids...) {
		if err := r.writeSmall(ctx, idKey(id.Hex), d); err != nil {
			return err
		}
	}
	if name.Tag == "" {
		return nil
	}
	if err := r.writeSmall(ctx, refKey(name), d); err != nil {
		return err
	}
	return r.rebuildIndex(ctx)
}

// rebuildIndex writes index.json from refs/. Two exporters rebuilding it at once may lose
// one's reference from index.json until the next export; refs/ keeps both.
func (r *Remote) rebuildIndex(ctx context.Context) error {
	keys, err := r.b.list(ctx, "refs/")
	if err != nil {
		return err
	}
	slices.Sort(keys)
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, k := range keys {
		var d v1.Descriptor
		if err := r.readSmall(ctx, k, &d); err != nil {
			if errors.Is(err, errNotFound) || errors.Is(err, errDamaged) {
				continue // removed meanwhile, or being written: the next rebuild has it
			}
			return err
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	return r.writeSmall(ctx, indexKey, idx)
}
