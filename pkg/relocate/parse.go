package relocate

import (
	"strings"

	"flatbed.dev/pkg/imageref"
)

// ParseImage reads an image as docker and CNAB bundles write it: "ubuntu:22.04",
// "istio/proxyv2", "quay.io/a/b@sha256:…" (a first component without '.' or ':' that is not
// "localhost" is a Docker Hub path), or flatbed's form with a scheme
// ("https://registry.hub.docker.com/library/redis:4"). Unlike imageref.Parse an image
// without tag or digest keeps neither, so that it is relocated without one as in duffle.
func ParseImage(s string) (imageref.Ref, error) {
	in := strings.TrimSpace(s)
	if !strings.Contains(in, "://") {
		first, _, ok := strings.Cut(in, "/")
		if !ok || (!strings.ContainsAny(first, ".:") && first != "localhost" && strings.ToLower(first) == first) {
			in = "docker.io/" + in
		}
	}
	r, err := imageref.Parse(in)
	if err != nil {
		return imageref.Ref{}, err
	}
	if !hasTag(in) {
		r.Tag = ""
	}
	return r, nil
}

// hasTag reports whether an image written as [SCHEME://]REGISTRY/REPOSITORY[:TAG][@DIGEST]
// has a tag.
func hasTag(s string) bool {
	s, _, _ = strings.Cut(s, "@")
	if _, after, ok := strings.Cut(s, "://"); ok {
		s = after
	}
	_, path, _ := strings.Cut(s, "/")
	return strings.Contains(path, ":")
}

// dockerString writes r as docker does, without a scheme: "registry/repository[:tag][@digest]".
func dockerString(r imageref.Ref) string {
	return r.Registry + "/" + r.Repository + r.Reference()
}
