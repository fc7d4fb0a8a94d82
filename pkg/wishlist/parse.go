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
	var format *yaml.Node
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
			w.formatLine, format = v.Line, v
		case "input":
			w.Input, w.refs, w.inputLines = p.inputs(v)
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
	if format != nil {
		p.formatFits(format, w)
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
		p.add(v, "version", "expected the number %d, found %s; write `version: %d`", Version, kind(v), Version)
		return 0
	}
	if n != Version {
		p.add(v, "version", "version %d is not supported; only `version: %d` exists", n, Version)
	}
	return n
}

func (p *parser) repo(v *yaml.Node) string {
	s := p.scalar(v, "cvmfs_repo")
	if v.Kind == yaml.ScalarNode {
		if problem := repoProblem(s); problem != "" {
			p.add(v, "cvmfs_repo", "%s", problem)
		}
	}
	return s
}

// CheckRepo reports whether repo is a valid cvmfs_repo ("unpacked.cern.ch" or
// "unpacked.cern.ch/sub/dir"); the error says how to fix it.
func CheckRepo(repo string) error {
	if problem := repoProblem(repo); problem != "" {
		return fmt.Errorf("cvmfs_repo %q: %s", repo, problem)
	}
	return nil
}

func repoProblem(s string) string {
	switch {
	case s == "":
		return "empty; write the target repository, e.g. `cvmfs_repo: unpacked.cern.ch`"
	case strings.HasPrefix(s, "/cvmfs/"):
		return fmt.Sprintf("write the repository name without /cvmfs/, e.g. %q", strings.TrimPrefix(s, "/cvmfs/"))
	case strings.Contains("/"+s+"/", "/../") || strings.Contains("/"+s+"/", "/./"):
		return fmt.Sprintf("%q has a '.' or '..' path component; write the repository and an optional sub-directory without them, such as 'unpacked.cern.ch' or 'unpacked.cern.ch/sub/dir'", s)
	case !repoRe.MatchString(s):
		return fmt.Sprintf("%q is not a repository name with an optional sub-directory; use letters, digits, '.', '_' and '-' separated by single '/', such as 'unpacked.cern.ch' or 'unpacked.cern.ch/sub/dir'", s)
	}
	return ""
}

func (p *parser) format(v *yaml.Node) string {
	s := p.scalar(v, "output_format")
	if s == "" {
		return ""
	}
	if err := imageref.CheckFormat(s); err != nil {
		p.add(v, "output_format", "%v", err)
	}
	return s
}

// formatFits refuses an output_format that gives no input a thin-image name: it is the
// format that is wrong. The images it fits only some of are named by Outputs, when thin
// images are wanted. The inputs themselves are the test (a sample image would have no
// digest, and so would refuse $(digest) whatever the inputs).
func (p *parser) formatFits(v *yaml.Node, w *Wishlist) {
	if w.OutputFormat == "" || len(w.refs) == 0 || imageref.CheckFormat(w.OutputFormat) != nil {
		return
	}
	var first error
	for _, r := range w.refs {
		out, err := r.Expand(w.OutputFormat)
		if err == nil {
			if _, err = imageref.Parse(out); err == nil {
				return
			}
		}
		if first == nil {
			first = fmt.Errorf("for the image %s it gives %q, which is not an image: %w", r, out, err)
		}
	}
	p.add(v, "output_format", "%v", first)
}

const exampleImage = "'https://registry.hub.docker.com/library/ubuntu:22.04'"

func (p *parser) inputs(v *yaml.Node) ([]string, []imageref.Ref, []int) {
	if isNull(v) || (v.Kind == yaml.SequenceNode && len(v.Content) == 0) {
		p.add(v, "input", "empty; list at least one image, e.g. `- %s`", exampleImage)
		return nil, nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		p.add(v, "input", "expected a list of images (lines starting with '- '), found %s; write e.g. `input: [%s]`", kind(v), exampleImage)
		return nil, nil, nil
	}
	var (
		inputs []string
		refs   []imageref.Ref
		lines  []int
		first  = map[string]int{} // whole name -> index
	)
	for i, item := range v.Content {
		field := fmt.Sprintf("input[%d]", i)
		if item.Kind != yaml.ScalarNode || (item.Tag != "!!str" && !isNull(item)) {
			p.add(item, field, "expected an image name, found %s; write each image as a quoted string, e.g. `- %s`", kind(item), exampleImage)
			continue
		}
		s := p.scalar(item, field)
		r, err := imageref.Parse(s)
		if err != nil {
			p.add(item, field, "%v", err)
			continue
		}
		if j, dup := first[r.String()]; dup {
			how := "is"
			if s != v.Content[j].Value {
				how = fmt.Sprintf("is, as %s,", r)
			}
			p.add(item, field, "%q %s the same image as input[%d] on line %d; remove one of them", imageref.Redact(s), how, j, v.Content[j].Line)
			continue
		}
		first[r.String()] = i
		inputs = append(inputs, s)
		refs = append(refs, r)
		lines = append(lines, item.Line)
	}
	return inputs, refs, lines
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

// suggest names the known key an unknown one is probably a typo of: the same
// but for case, '_', '-' and spaces, or at most two edits away.
func suggest(key string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
	}
	best, bestDist := "", 3
	for _, k := range knownKeys {
		if norm(k) == norm(key) {
			return fmt.Sprintf(" (did you mean %s?)", k)
		}
		if d := distance(norm(k), norm(key)); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	return ""
}

// distance is the Levenshtein distance of a and b (in bytes; keys are ASCII).
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
