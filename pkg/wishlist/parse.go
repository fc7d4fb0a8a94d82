package wishlist

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"flatbed.dev/pkg/imageref"
)

var knownKeys = []string{"version", "user", "cvmfs_repo", "output_format", "input", "ignoreErrors"}

var repoRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*$`)

// Parse parses a DUCC v1 wishlist; source names it in errors (usually the
// file path). All problems are reported together in one error wrapping
// ErrParse, each as "source:line: field: what is wrong and how to fix it".
func Parse(data []byte, source string) (*Wishlist, error) {
	doc, p, err := document(data, source)
	if err != nil {
		return nil, err
	}
	w := &Wishlist{Path: source}
	seen := map[string]int{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if line, dup := seen[k.Value]; dup {
			p.add(k, k.Value, "defined twice (lines %d and %d); keep one", line, k.Line)
			continue
		}
		seen[k.Value] = k.Line
		switch k.Value {
		case "version":
			w.Version = p.version(v)
		case "user":
			w.User = p.scalar(v, "user")
		case "cvmfs_repo":
			w.CvmfsRepo = p.repo(v)
		case "output_format":
			w.OutputFormat = p.format(v)
		case "input":
			w.Input, w.refs = p.inputs(v)
		case "ignoreErrors":
			w.IgnoreErrors = p.globs(v)
		default:
			p.add(k, k.Value, "unknown key%s; the known keys are %s", suggest(k.Value), strings.Join(knownKeys, ", "))
		}
	}
	if _, ok := seen["version"]; !ok {
		p.add(doc, "version", "missing; add `version: 1`")
	}
	if _, ok := seen["cvmfs_repo"]; !ok {
		p.add(doc, "cvmfs_repo", "missing; add the target repository, e.g. `cvmfs_repo: unpacked.cern.ch`")
	}
	if _, ok := seen["input"]; !ok {
		p.add(doc, "input", "missing; add the list of images to convert, e.g. `input: ['https://registry.hub.docker.com/library/ubuntu:22.04']`")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return w, nil
}

func (p *parser) scalar(v *yaml.Node, field string) string {
	if v.Kind != yaml.ScalarNode {
		p.add(v, field, "expected a single value, found %s", kind(v))
		return ""
	}
	if isNull(v) {
		return ""
	}
	return strings.TrimSpace(v.Value)
}

func (p *parser) version(v *yaml.Node) int {
	var n int
	if v.Kind != yaml.ScalarNode || v.Decode(&n) != nil {
		p.add(v, "version", "expected the number %d, found %s", Version, kind(v))
		return 0
	}
	if n != Version {
		p.add(v, "version", "version %d is not supported; only `version: %d` exists", n, Version)
	}
	return n
}

func (p *parser) repo(v *yaml.Node) string {
	s := p.scalar(v, "cvmfs_repo")
	switch {
	case v.Kind != yaml.ScalarNode:
	case s == "":
		p.add(v, "cvmfs_repo", "empty; write the target repository, e.g. `cvmfs_repo: unpacked.cern.ch`")
	case strings.HasPrefix(s, "/cvmfs/"):
		p.add(v, "cvmfs_repo", "write the repository name without /cvmfs/, e.g. %q", strings.TrimPrefix(s, "/cvmfs/"))
	case !repoRe.MatchString(s) || strings.Contains("/"+s+"/", "/../") || strings.Contains("/"+s+"/", "/./"):
		p.add(v, "cvmfs_repo", "%q is not a repository name with an optional sub-directory, such as 'unpacked.cern.ch' or 'unpacked.cern.ch/sub/dir'", s)
	}
	return s
}

func (p *parser) format(v *yaml.Node) string {
	s := p.scalar(v, "output_format")
	if s == "" {
		return ""
	}
	if err := imageref.CheckFormat(s); err != nil {
		p.add(v, "output_format", "%v", err)
		return s
	}
	sample := imageref.Ref{Scheme: "https", Registry: "registry.example.org", Repository: "library/sample", Tag: "1.0"}
	out, _ := sample.Expand(s)
	if _, err := imageref.Parse(out); err != nil {
		p.add(v, "output_format", "for the image %s it gives %q, which is not an image: %v", sample, out, err)
	}
	return s
}

func (p *parser) inputs(v *yaml.Node) ([]string, []imageref.Ref) {
	if isNull(v) || (v.Kind == yaml.SequenceNode && len(v.Content) == 0) {
		p.add(v, "input", "empty; list at least one image, e.g. `- 'https://registry.hub.docker.com/library/ubuntu:22.04'`")
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		p.add(v, "input", "expected a list of images (lines starting with '- '), found %s", kind(v))
		return nil, nil
	}
	var (
		inputs []string
		refs   []imageref.Ref
		first  = map[string]int{} // whole name -> index
	)
	for i, item := range v.Content {
		field := fmt.Sprintf("input[%d]", i)
		s := p.scalar(item, field)
		if item.Kind != yaml.ScalarNode {
			continue
		}
		r, err := imageref.Parse(s)
		if err != nil {
			p.add(item, field, "%v", err)
			continue
		}
		if j, dup := first[r.String()]; dup {
			p.add(item, field, "%q is the same image as input[%d] on line %d; remove one", s, j, v.Content[j].Line)
			continue
		}
		first[r.String()] = i
		inputs = append(inputs, s)
		refs = append(refs, r)
	}
	return inputs, refs
}

func (p *parser) globs(v *yaml.Node) []string {
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		p.add(v, "ignoreErrors", "expected a list of patterns, found %s; write e.g. `ignoreErrors: ['https://registry.hub.docker.com/foo/*']`", kind(v))
		return nil
	}
	var out []string
	for i, item := range v.Content {
		field := fmt.Sprintf("ignoreErrors[%d]", i)
		s := p.scalar(item, field)
		if item.Kind != yaml.ScalarNode {
			continue
		}
		if _, err := filepath.Match(s, ""); err != nil {
			p.add(item, field, "%q is not a valid glob (%v); see Go's filepath.Match syntax", s, err)
			continue
		}
		out = append(out, s)
	}
	return out
}

// suggest names the known key an unknown one is probably a typo of.
func suggest(key string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
	}
	for _, k := range knownKeys {
		if norm(k) == norm(key) {
			return fmt.Sprintf(" (did you mean %s?)", k)
		}
	}
	return ""
}
