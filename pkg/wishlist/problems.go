package wishlist

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parser collects every problem of one wishlist, so that a user fixes
// them all in one go instead of one per run.
type parser struct {
	source   string
	problems []string
}

// add records a problem at node's line, about field.
func (p *parser) add(n *yaml.Node, field, format string, args ...any) {
	p.problems = append(p.problems, fmt.Sprintf("%s:%d: %s: %s", p.source, n.Line, field, fmt.Sprintf(format, args...)))
}

// err returns nil, or one error wrapping ErrParse that lists every problem.
func (p *parser) err() error {
	switch len(p.problems) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%w: %s", ErrParse, p.problems[0])
	}
	return fmt.Errorf("%w %s: %d problems:\n  %s", ErrParse, p.source, len(p.problems), strings.Join(p.problems, "\n  "))
}

// document parses data and returns its top-level mapping.
func document(data []byte, source string) (*yaml.Node, *parser, error) {
	p := &parser{source: source}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, syntaxError(source, data, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, nil, fmt.Errorf("%w %s: the file is empty; a wishlist needs at least version: 1, cvmfs_repo and input", ErrParse, source)
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		p.add(doc, "top level", "expected keys (version, cvmfs_repo, input, ...), found %s; "+
			"a wishlist starts with `version: 1`, then `cvmfs_repo: ...` and `input:` at the start of their lines", kind(doc))
		return nil, nil, p.err()
	}
	return doc, p, nil
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError explains a YAML syntax error as "source:line: not valid YAML: what; fix".
func syntaxError(source string, data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	where := source
	line := 0
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		where, msg = fmt.Sprintf("%s:%d", source, line), m[2]
	}
	hint := "check the indentation and quote values that contain ': ', '#', '[' or '{'"
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimLeft(l, " "), "\t") {
			hint = fmt.Sprintf("line %d is indented with a tab; YAML allows only spaces for indentation", i+1)
			break
		}
	}
	return fmt.Errorf("%w %s: not valid YAML: %s; %s", ErrParse, where, msg, hint)
}

func kind(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float"):
		return fmt.Sprintf("the number %s", n.Value)
	case n.Kind == yaml.ScalarNode && n.Tag == "!!bool":
		return fmt.Sprintf("the boolean %s", n.Value)
	case n.Kind == yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "an alias"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}
