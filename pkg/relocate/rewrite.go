package relocate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// RewriteYAML returns the YAML documents in with every string that names an image of the
// mapping replaced by its relocated reference (with the digest copied), and how many it
// replaced. An image matches as the mapping's key writes it or written another way for the
// same name, tag and digest (nginx:1.25 is docker.io/library/nginx:1.25, http://host/app:1 is
// host/app:1), wherever it is: a Kubernetes container's image, a Helm value, a list. Only the
// replaced strings change; comments, order, quoting and layout stay byte for byte. A mapped
// image written in a form that cannot be replaced in place (a block scalar, escapes in
// double quotes) is an error naming its line.
func (m Mapping) RewriteYAML(in []byte) ([]byte, int, error) {
	lookup := map[string]string{}
	for orig, relocated := range m {
		if k, ok := imageKey(orig); ok {
			lookup[k] = relocated
		}
	}
	lines := lineStarts(in)
	type edit struct {
		start, end int
		text       string
	}
	var edits []edit
	dec := yaml.NewDecoder(bytes.NewReader(in))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reading YAML: %w", err)
		}
		var walkErr error
		walk(&doc, func(n *yaml.Node) {
			if walkErr != nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
				return
			}
			k, ok := imageKey(n.Value)
			if !ok {
				return
			}
			relocated, ok := lookup[k]
			if !ok {
				return
			}
			start, end, err := scalarSpan(in, lines, n)
			if err != nil {
				walkErr = fmt.Errorf("line %d: image %s: %w", n.Line, n.Value, err)
				return
			}
			edits = append(edits, edit{start, end, relocated})
		})
		if walkErr != nil {
			return nil, 0, walkErr
		}
	}
	sort.Slice(edits, func(i, j int) bool { return edits[i].start > edits[j].start })
	out := bytes.Clone(in)
	for _, e := range edits {
		out = append(out[:e.start:e.start], append([]byte(e.text), out[e.end:]...)...)
	}
	return out, len(edits), nil
}

// imageKey is an image's name as docker normalizes it, with its tag and digest: the same
// for every way of writing one image.
func imageKey(s string) (string, bool) {
	if s == "" || len(s) > 1024 || bytes.ContainsAny([]byte(s), " \t\n") {
		return "", false
	}
	r, err := ParseImage(s)
	if err != nil {
		return "", false
	}
	host, path := dockerName(r)
	return host + "/" + path + r.Reference(), true
}

func walk(n *yaml.Node, visit func(*yaml.Node)) {
	visit(n)
	for _, c := range n.Content {
		walk(c, visit)
	}
}

// lineStarts are the byte offsets at which in's lines begin.
func lineStarts(in []byte) []int {
	starts := []int{0}
	for i, b := range in {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// scalarSpan is where n's value is written in in: the bytes to replace, inside its quotes.
func scalarSpan(in []byte, lines []int, n *yaml.Node) (int, int, error) {
	if n.Line < 1 || n.Line > len(lines) {
		return 0, 0, errors.New("no position")
	}
	off := lines[n.Line-1]
	for col := 1; col < n.Column && off < len(in); col++ { // columns count characters
		_, size := utf8.DecodeRune(in[off:])
		off += size
	}
	v := []byte(n.Value)
	switch n.Style {
	case 0:
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		if off < len(in) && (in[off] == '\'' || in[off] == '"') {
			off++
		}
	default:
		return 0, 0, errors.New("written as a block scalar: write it as a plain or quoted string")
	}
	if !bytes.HasPrefix(in[off:], v) {
		return 0, 0, errors.New("written with escapes or over several lines: write it on one line without escapes")
	}
	return off, off + len(v), nil
}
