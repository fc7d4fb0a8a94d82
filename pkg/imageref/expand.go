package imageref

import (
	"fmt"
	"strings"
)

// DefaultOutputFormat names the thin image when a wishlist has no
// output_format; it is DUCC's default.
const DefaultOutputFormat = "$(scheme)://$(registry)/$(repository)_thin:$(tag)"

// Variables lists the names output_format may use, in DUCC's order.
var Variables = []string{"scheme", "registry", "repository", "tag", "digest", "reference", "image"}

// Expand fills a DUCC output_format with the parts of r:
// $(scheme), $(registry), $(repository), $(tag), $(digest);
// $(reference) is ":tag", "@digest" or ":tag@digest" (separator included);
// $(image) is $(repository)$(reference), e.g. "library/redis:4".
// A part r does not have expands to "" as in DUCC. Expand a wildcard input
// once per concrete tag (see WithTag), as DUCC names one thin image per tag.
func (r Ref) Expand(format string) (string, error) {
	values := map[string]string{
		"scheme":     r.Scheme,
		"registry":   r.Registry,
		"repository": r.Repository,
		"tag":        r.Tag,
		"digest":     r.Digest,
		"reference":  r.Reference(),
		"image":      r.Repository + r.Reference(),
	}
	var b strings.Builder
	err := walkFormat(format, func(literal, variable string) {
		b.WriteString(literal)
		b.WriteString(values[variable])
	})
	if err != nil {
		return "", err
	}
	return b.String(), nil
}

// CheckFormat reports whether format uses only known variables, without
// an image to expand it with.
func CheckFormat(format string) error {
	return walkFormat(format, func(string, string) {})
}

// walkFormat calls emit with each literal run and the variable after it
// ("" at the end); it fails on an unknown or unterminated variable.
func walkFormat(format string, emit func(literal, variable string)) error {
	rest := format
	for {
		i := strings.Index(rest, "$(")
		if i < 0 {
			emit(rest, "")
			return nil
		}
		j := strings.IndexByte(rest[i:], ')')
		if j < 0 {
			return fmt.Errorf("output format %q: %q is not closed; write $(name) with one of %s", format, rest[i:], known())
		}
		name := rest[i+2 : i+j]
		if !isVariable(name) {
			return fmt.Errorf("output format %q: unknown variable $(%s); known variables are %s", format, name, known())
		}
		emit(rest[:i], name)
		rest = rest[i+j+1:]
	}
}

func isVariable(name string) bool {
	for _, v := range Variables {
		if v == name {
			return true
		}
	}
	return false
}

func known() string {
	parts := make([]string, len(Variables))
	for i, v := range Variables {
		parts[i] = "$(" + v + ")"
	}
	return strings.Join(parts, " ")
}
