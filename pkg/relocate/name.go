package relocate

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"flatbed.dev/pkg/imageref"
)

// MaxNameLength bounds a relocated name, registry and repository without tag or digest, as
// docker's reference package does (NameTotalLengthMax).
const MaxNameLength = 255

// Namer gives the relocated name of an original image: Prefix.Flat or Prefix.Nested.
type Namer func(original imageref.Ref) (imageref.Ref, error)

// Prefix is a repository prefix, "registry[:port][/path]", under which images are relocated.
type Prefix struct {
	scheme   string
	registry string
	path     string
}

// ParsePrefix reads a repository prefix such as "example.com/user" or
// "http://localhost:5000/mirror" (http:// for a plain-text registry).
func ParsePrefix(s string) (Prefix, error) {
	rest := s
	if _, after, ok := strings.Cut(s, "://"); ok {
		rest = after
	}
	host, path, _ := strings.Cut(rest, "/")
	switch {
	case strings.TrimSpace(s) == "" || host == "":
		return Prefix{}, fmt.Errorf("repository prefix %q: write it as REGISTRY[/PATH], e.g. example.com/user", s)
	case strings.HasSuffix(rest, "/") || strings.Contains(rest, "//"):
		return Prefix{}, fmt.Errorf("repository prefix %q: a trailing '/' or '//' is not allowed", s)
	case strings.ContainsAny(path, ":@"):
		return Prefix{}, fmt.Errorf("repository prefix %q: a prefix names repositories, it cannot have a tag or digest", s)
	}
	// imageref.Parse checks the registry and the path components; "probe" stands for the
	// relocated repository.
	probe := strings.TrimSuffix(s, "/") + "/probe"
	r, err := imageref.Parse(probe)
	if err != nil {
		return Prefix{}, fmt.Errorf("repository prefix %q: %w", s, err)
	}
	return Prefix{scheme: r.Scheme, registry: r.Registry, path: strings.TrimSuffix(strings.TrimSuffix(r.Repository, "probe"), "/")}, nil
}

// String returns "registry[/path]".
func (p Prefix) String() string {
	if p.path == "" {
		return p.registry
	}
	return p.registry + "/" + p.path
}

// Flat is duffle's and image-relocation's FlattenRepoPathPreserveTagDigest: the prefix, "/",
// the original repository path with "/" replaced by "-", "-" and the md5 of the original's
// normalized name without tag or digest; tag and digest are kept. A name longer than
// MaxNameLength loses middle path components (see crunch); the md5 keeps it unique.
func (p Prefix) Flat(original imageref.Ref) (imageref.Ref, error) {
	host, path := dockerName(original)
	sum := md5.Sum([]byte(host + "/" + path))
	hash := hex.EncodeToString(sum[:])
	available := MaxNameLength - len(p.String()+"/"+"-"+hash)
	repo := hash
	if flat := strings.Join(crunch(strings.Split(path, "/"), available), "-"); flat != "" {
		repo = flat + "-" + hash
	}
	return p.relocated(repo, original)
}

// Nested keeps the original's hierarchy (--no-flatten): the prefix, "/" and the original
// repository path; tag and digest are kept. Two registries' images with the same path
// meet in one repository: Plan refuses that.
func (p Prefix) Nested(original imageref.Ref) (imageref.Ref, error) {
	_, path := dockerName(original)
	return p.relocated(path, original)
}

func (p Prefix) relocated(repo string, original imageref.Ref) (imageref.Ref, error) {
	if p.path != "" {
		repo = p.path + "/" + repo
	}
	r := imageref.Ref{Scheme: p.scheme, Registry: p.registry, Repository: repo, Tag: original.Tag, Digest: original.Digest}
	if n := len(p.registry + "/" + repo); n > MaxNameLength {
		return imageref.Ref{}, fmt.Errorf("relocating %s under %s: the name %s/%s has %d characters, more than %d", dockerString(original), p, p.registry, repo, n, MaxNameLength)
	}
	return r, nil
}

// dockerName returns the registry and repository path of r as docker normalizes them:
// index.docker.io is docker.io, and Docker Hub's one-component names are under "library/".
// Other registries, registry.hub.docker.com included, stay as written, as in duffle.
func dockerName(r imageref.Ref) (host, path string) {
	host, path = r.Registry, r.Repository
	if host == "docker.io" || host == "index.docker.io" {
		host = "docker.io"
		if !strings.Contains(path, "/") {
			path = "library/" + path
		}
	}
	return host, path
}

// crunch returns the components to join with "-" in at most size characters, as
// image-relocation's pathmapping does: all of them when they fit; otherwise the first k-1,
// a "-" marking the gap and the last, for the largest k from len-1 down to 2 that fits; then
// the last alone; then the first alone; then none (the name is the hash alone).
func crunch(components []string, size int) []string {
	n := len(components)
	last := components[n-1]
	for keep := n; keep >= 1; keep-- {
		var c []string
		switch {
		case keep == n:
			c = components
		case keep == 1:
			c = []string{last}
		default:
			c = append(slices.Clone(components[:keep-1]), "-", last)
		}
		if len(strings.Join(c, "-")) <= size {
			return c
		}
	}
	if len(components[0]) <= size {
		return components[:1]
	}
	return nil
}
