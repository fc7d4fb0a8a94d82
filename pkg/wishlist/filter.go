package wishlist

import (
	"fmt"
	"os"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"flatbed.dev/pkg/imageref"
)

// Filter is a wishlist whose inputs are patterns over pushed images rather than images: the
// front door's registry webhooks turn a pushed image that one of them matches into a wish
// with the filter's cvmfs_repo and output_format. A pattern is
// "[SCHEME://]REGISTRY/REPOSITORY[:TAG]" in which REPOSITORY and TAG are globs (Go's
// path.Match: '*' does not cross '/'); without a TAG every tag matches. The scheme is the
// one the pushed image is read over: a registry's notification does not say it.
type Filter struct {
	Version      int
	User         string
	CvmfsRepo    string
	OutputFormat string // as written; "" means imageref.DefaultOutputFormat
	Patterns     []Pattern
	Path         string
}

// Pattern is one input of a Filter.
type Pattern struct {
	Text       string // as written
	Scheme     string // https unless written
	Registry   string // host[:port], exact (case-insensitive)
	Repository string // glob
	Tag        string // glob; "" matches every tag
}

// LoadFilter reads and parses the filter wishlist at path (errors as Load's).
func LoadFilter(path string) (*Filter, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrRead, path, err)
	}
	return ParseFilter(data, path)
}

// ParseFilter parses a DUCC v1 wishlist whose inputs may be globs; every problem is reported
// in one error wrapping ErrParse, as Parse does.
func ParseFilter(data []byte, source string) (*Filter, error) {
	doc, p, err := document(data, source)
	if err != nil {
		return nil, err
	}
	f := &Filter{Path: source}
	seen := map[string]bool{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if seen[k.Value] {
			p.add(k, k.Value, "defined twice; keep one")
			continue
		}
		seen[k.Value] = true
		switch k.Value {
		case "version":
			f.Version = p.version(v)
		case "user":
			f.User = p.scalar(v, "user")
		case "cvmfs_repo":
			f.CvmfsRepo = p.repo(v)
		case "output_format":
			f.OutputFormat = p.format(v)
		case "input":
			f.Patterns = p.patterns(v)
		case "ignoreErrors":
			p.globs(v) // checked; a pushed image has no wishlist run whose errors it could ignore
		default:
			p.add(k, k.Value, "unknown key%s; the known keys are %s", suggest(k.Value), strings.Join(knownKeys, ", "))
		}
	}
	for _, key := range []string{"version", "cvmfs_repo", "input"} {
		if !seen[key] {
			p.add(doc, key, "missing")
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return f, nil
}

func (p *parser) patterns(v *yaml.Node) []Pattern {
	if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
		p.add(v, "input", "expected a non-empty list of image patterns, e.g. `- 'http://registry:5000/apps/*'`")
		return nil
	}
	var out []Pattern
	for i, item := range v.Content {
		field := fmt.Sprintf("input[%d]", i)
		s := p.scalar(item, field)
		if item.Kind != yaml.ScalarNode {
			continue
		}
		pat, err := ParsePattern(s)
		if err != nil {
			p.add(item, field, "%v", err)
			continue
		}
		out = append(out, pat)
	}
	return out
}

// ParsePattern reads one filter input, "[SCHEME://]REGISTRY/REPOSITORY[:TAG]" with globs in
// REPOSITORY and TAG.
func ParsePattern(s string) (Pattern, error) {
	pat := Pattern{Text: s, Scheme: imageref.DefaultScheme}
	rest := strings.TrimSpace(s)
	if scheme, after, ok := strings.Cut(rest, "://"); ok {
		pat.Scheme, rest = strings.ToLower(scheme), after
		if pat.Scheme != "http" && pat.Scheme != "https" {
			return Pattern{}, fmt.Errorf("%q: scheme %q is not supported; use https:// (or http:// for a plain-text registry)", s, scheme)
		}
	}
	reg, repo, ok := strings.Cut(rest, "/")
	if !ok || reg == "" || repo == "" {
		return Pattern{}, fmt.Errorf("%q: want [SCHEME://]REGISTRY/REPOSITORY[:TAG], REPOSITORY and TAG may hold globs, e.g. http://registry:5000/apps/*", s)
	}
	if strings.ContainsAny(reg, "*?[") {
		return Pattern{}, fmt.Errorf("%q: the registry %q must be written out, without a glob", s, reg)
	}
	if c := strings.LastIndexByte(repo, ':'); c > strings.LastIndexByte(repo, '/') {
		repo, pat.Tag = repo[:c], repo[c+1:]
		if pat.Tag == "" {
			return Pattern{}, fmt.Errorf("%q: the tag after ':' is empty; drop the ':' to match every tag", s)
		}
	}
	if strings.Contains(repo, "@") {
		return Pattern{}, fmt.Errorf("%q: a pattern names repositories and tags, not digests", s)
	}
	for _, g := range []string{repo, pat.Tag} {
		if _, err := path.Match(g, ""); err != nil {
			return Pattern{}, fmt.Errorf("%q: %q is not a valid glob (%v); see Go's path.Match syntax", s, g, err)
		}
	}
	pat.Registry, pat.Repository = strings.ToLower(reg), repo
	return pat, nil
}

// Matches reports whether the image registry/repository:tag is one the pattern names.
func (p Pattern) Matches(registry, repository, tag string) bool {
	if !strings.EqualFold(p.Registry, registry) {
		return false
	}
	if ok, _ := path.Match(p.Repository, repository); !ok {
		return false
	}
	if p.Tag == "" {
		return true
	}
	ok, _ := path.Match(p.Tag, tag)
	return ok
}

// Match returns the first pattern that names registry/repository:tag.
func (f *Filter) Match(registry, repository, tag string) (Pattern, bool) {
	for _, p := range f.Patterns {
		if p.Matches(registry, repository, tag) {
			return p, true
		}
	}
	return Pattern{}, false
}

// Format returns the output format in force: OutputFormat, or DUCC's default.
func (f *Filter) Format() string {
	if f.OutputFormat == "" {
		return imageref.DefaultOutputFormat
	}
	return f.OutputFormat
}
