package imageref

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalid is wrapped by every error Parse returns.
var ErrInvalid = errors.New("invalid image")

const syntax = "[SCHEME://]REGISTRY/REPOSITORY[:TAG][@DIGEST], e.g. https://registry.hub.docker.com/library/ubuntu:22.04"

var (
	hostRe      = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?$`)
	componentRe = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$`)
	tagRe       = regexp.MustCompile(`^[A-Za-z0-9_*][A-Za-z0-9_.*-]{0,127}$`)
	digestRe    = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

// Parse reads an image written as [SCHEME://]REGISTRY/REPOSITORY[:TAG][@DIGEST].
// The scheme defaults to https; an image with neither tag nor digest gets
// the tag "latest". Without a scheme the first path component must look
// like a host (contain '.' or ':' or be "localhost"), so that a Docker Hub
// short name such as "library/ubuntu" is reported instead of being read as
// the registry "library".
func Parse(s string) (Ref, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return Ref{}, invalid(s, "the image is empty; write it as "+syntax)
	}
	r := Ref{Scheme: DefaultScheme}
	rest := in
	explicitScheme := false
	if i := strings.Index(rest, "://"); i >= 0 {
		r.Scheme = strings.ToLower(rest[:i])
		rest = rest[i+3:]
		explicitScheme = true
		if r.Scheme != "https" && r.Scheme != "http" {
			return Ref{}, invalid(s, fmt.Sprintf("scheme %q is not supported; use https:// (or http:// for a plain-text registry)", in[:i]))
		}
	}
	if err := checkCredentials(s, rest); err != nil {
		return Ref{}, err
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return Ref{}, invalid(s, "missing registry; write the registry first, e.g. registry.hub.docker.com/library/"+rest)
	}
	r.Registry, rest = rest[:slash], rest[slash+1:]
	if strings.HasPrefix(rest, "/") || strings.Contains(rest, "//") {
		return Ref{}, invalid(s, "empty path component ('//'); write a single '/' between registry and repository parts")
	}
	if err := checkRegistry(s, r.Registry, explicitScheme, rest); err != nil {
		return Ref{}, err
	}
	if strings.Count(rest, "@") > 1 {
		return Ref{}, invalid(s, "too many '@'; only one digest may follow the repository")
	}
	if at := strings.IndexByte(rest, '@'); at >= 0 {
		r.Digest, rest = rest[at+1:], rest[:at]
		if !digestRe.MatchString(r.Digest) {
			return Ref{}, invalid(s, fmt.Sprintf("digest %q is not of the form sha256:<64 lower-case hex digits>", r.Digest))
		}
	}
	if c := strings.LastIndexByte(rest, ':'); c >= 0 && c > strings.LastIndexByte(rest, '/') {
		r.Tag, rest = rest[c+1:], rest[:c]
		if r.Tag == "" {
			return Ref{}, invalid(s, "the tag after ':' is empty; write a tag (e.g. :latest) or drop the ':'")
		}
	}
	r.Repository = strings.TrimSuffix(rest, "/")
	if err := checkRepository(s, r.Repository); err != nil {
		return Ref{}, err
	}
	if r.Tag != "" && !tagRe.MatchString(r.Tag) {
		return Ref{}, invalid(s, fmt.Sprintf("tag %q is not valid; a tag has at most 128 letters, digits, '_', '.', '-' (and '*' as a wildcard) and cannot start with '.' or '-'", r.Tag))
	}
	if r.Wildcard() && r.Digest != "" {
		return Ref{}, invalid(s, "a wildcard tag cannot be combined with a digest; drop one of them")
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r, nil
}

func checkRegistry(s, reg string, explicitScheme bool, rest string) error {
	if reg == "" {
		return invalid(s, "missing registry before the first '/'; write it as "+syntax)
	}
	if !hostRe.MatchString(reg) {
		return invalid(s, fmt.Sprintf("registry %q is not a host name[:port]", reg))
	}
	looksLikeHost := strings.ContainsAny(reg, ".:") || reg == "localhost"
	if !explicitScheme && !looksLikeHost {
		return invalid(s, fmt.Sprintf("missing registry: %q looks like part of a repository, not a registry host; write e.g. registry.hub.docker.com/%s/%s (or add https:// if %q really is the registry host)", reg, reg, rest, reg))
	}
	return nil
}

func checkRepository(s, repo string) error {
	if repo == "" {
		return invalid(s, "the repository is empty; write it after the registry, e.g. registry.hub.docker.com/library/ubuntu")
	}
	if lower := strings.ToLower(repo); lower != repo && componentsValid(lower) {
		return invalid(s, fmt.Sprintf("repository %q must be lower case; write %q", repo, lower))
	}
	for _, c := range strings.Split(repo, "/") {
		if !componentRe.MatchString(c) {
			return invalid(s, fmt.Sprintf("repository component %q is not valid; use lower-case letters and digits separated by '.', '_', '__' or '-'", c))
		}
	}
	return nil
}

func componentsValid(repo string) bool {
	for _, c := range strings.Split(repo, "/") {
		if !componentRe.MatchString(c) {
			return false
		}
	}
	return true
}

// checkCredentials refuses "user:password@registry/…": credentials do not belong in an image
// name, which is logged, stored and sent in events.
func checkCredentials(s, rest string) error {
	host, _, _ := strings.Cut(rest, "/")
	at := strings.LastIndexByte(host, '@')
	if at < 0 || strings.HasPrefix(host[at+1:], "sha256:") || strings.HasPrefix(host[at+1:], "sha512:") {
		return nil
	}
	return invalid(s, "credentials in the image name are not supported (they would be logged); remove the 'user:password@' part "+
		"and give the credentials with DUCC_AUTH_REGISTRIES (DUCC_<R>_IDENT/_USER/_PASS) or a docker config file (docker login)")
}

// Redact replaces the user information of "scheme://user:password@host/…" (or
// "user:password@host/…") with "***", so that a mistaken image name with credentials can be
// shown in an error.
func Redact(s string) string {
	prefix, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		prefix, rest = s[:i+3], s[i+3:]
	}
	host, path, slash := strings.Cut(rest, "/")
	at := strings.LastIndexByte(host, '@')
	if at < 0 || strings.HasPrefix(host[at+1:], "sha256:") || strings.HasPrefix(host[at+1:], "sha512:") {
		return s
	}
	out := prefix + "***" + host[at:]
	if slash {
		out += "/" + path
	}
	return out
}

func invalid(input, why string) error {
	return fmt.Errorf("%w %q: %s", ErrInvalid, Redact(input), why)
}
