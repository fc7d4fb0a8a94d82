package wishlist

import (
	"fmt"
	"os"
)

// Load reads and parses the wishlist at path. Errors wrap ErrRead when the
// file cannot be read and ErrParse when its content is wrong.
func Load(path string) (*Wishlist, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrRead, path, err)
	}
	return Parse(data, path)
}

// MergeIgnoreErrorsFile appends the ignoreErrors list of the YAML file at
// path (a file holding only `ignoreErrors: [...]`, as DUCC's
// DUCC_IGNORE_ERRORS_FILE) to w.IgnoreErrors.
func (w *Wishlist) MergeIgnoreErrorsFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrRead, path, err)
	}
	doc, p, err := document(data, path)
	if err != nil {
		return err
	}
	var patterns []string
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "ignoreErrors" {
			patterns = p.globs(doc.Content[i+1])
		}
	}
	if err := p.err(); err != nil {
		return err
	}
	w.IgnoreErrors = append(w.IgnoreErrors, patterns...)
	return nil
}
