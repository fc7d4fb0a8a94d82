package imageref

import "strings"

// Ref is one image as DUCC names it: the scheme says how to reach the
// registry (https, or http for a plain-text registry), Tag may be a
// wildcard pattern such as "21.2.1*", Digest is "sha256:<64 hex>".
type Ref struct {
	Scheme     string
	Registry   string
	Repository string
	Tag        string
	Digest     string
}

// DefaultScheme is used when an image is written without SCHEME://.
const DefaultScheme = "https"

// DefaultTag is used when an image has neither a tag nor a digest.
const DefaultTag = "latest"

// String returns the whole name with scheme, the form DUCC writes in
// notifications, thin.json's origin and the wishlist:
// "https://registry.hub.docker.com/library/redis:4".
func (r Ref) String() string {
	return r.Scheme + "://" + r.Registry + "/" + r.Repository + r.Reference()
}

// Name returns "registry/repository:tag", or "registry/repository@digest"
// when there is no tag: the public path of the image in the store.
func (r Ref) Name() string {
	base := r.Registry + "/" + r.Repository
	if r.Tag != "" {
		return base + ":" + r.Tag
	}
	return base + "@" + r.Digest
}

// Reference returns the part after the repository exactly as DUCC's
// $(reference) does: ":tag", "@digest" or ":tag@digest".
func (r Ref) Reference() string {
	var b strings.Builder
	if r.Tag != "" {
		b.WriteString(":" + r.Tag)
	}
	if r.Digest != "" {
		b.WriteString("@" + r.Digest)
	}
	return b.String()
}

// Wildcard reports whether the tag is a pattern to expand against the
// registry's tag list.
func (r Ref) Wildcard() bool { return strings.Contains(r.Tag, "*") }

// Insecure reports whether the registry is reached over plain http.
func (r Ref) Insecure() bool { return r.Scheme == "http" }

// WithTag returns a copy of r with the tag replaced, e.g. one tag that a
// wildcard expanded to.
func (r Ref) WithTag(tag string) Ref {
	r.Tag = tag
	return r
}
