package wishlist

import (
	"fmt"
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
		return nil, nil, fmt.Errorf("%w %s: not valid YAML: %w", ErrParse, source, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, nil, fmt.Errorf("%w %s: the file is empty; a wishlist needs at least version: 1, cvmfs_repo and input", ErrParse, source)
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		p.add(doc, "top level", "expected keys (version, cvmfs_repo, input, ...), found %s", kind(doc))
		return nil, nil, p.err()
	}
	return doc, p, nil
}

func kind(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "an alias"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}
