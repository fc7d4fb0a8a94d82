package wishlist

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"flatbed.dev/pkg/imageref"
)

// Version is the only wishlist version DUCC (and flatbed) understands.
const Version = 1

// IgnoreErrorsFileEnv names an extra YAML file whose ignoreErrors list DUCC
// merges into every wishlist's; see MergeIgnoreErrorsFile.
const IgnoreErrorsFileEnv = "DUCC_IGNORE_ERRORS_FILE"

// ErrRead is wrapped by errors from reading a wishlist file (DUCC exit 102).
var ErrRead = errors.New("cannot read wishlist")

// ErrParse is wrapped by errors from a wishlist's content (DUCC exit 103).
var ErrParse = errors.New("cannot parse wishlist")

// Wishlist is one DUCC v1 wishlist.
type Wishlist struct {
	Version      int
	User         string   // account that pushes the thin images
	CvmfsRepo    string   // "unpacked.cern.ch" or "unpacked.cern.ch/subdir"
	OutputFormat string   // as written; "" means imageref.DefaultOutputFormat
	Input        []string // images as written
	IgnoreErrors []string // filepath.Match globs over whole image names
	Path         string   // file it was read from, or the source given to Parse

	refs       []imageref.Ref
	inputLines []int // line of each of refs
	formatLine int   // line of output_format, 0 without one
}

// Refs returns the parsed Input, in order.
func (w *Wishlist) Refs() []imageref.Ref {
	return append([]imageref.Ref(nil), w.refs...)
}

// Format returns the output format in force: OutputFormat, or DUCC's default.
func (w *Wishlist) Format() string {
	if w.OutputFormat == "" {
		return imageref.DefaultOutputFormat
	}
	return w.OutputFormat
}

// Output returns the thin-image name for one input image; it fails when the
// format gives something that is not an image for in.
func (w *Wishlist) Output(in imageref.Ref) (string, error) {
	out, err := in.Expand(w.Format())
	if err != nil {
		return "", err
	}
	if _, err := imageref.Parse(out); err != nil {
		return "", fmt.Errorf("%s gives %q for %s, which is not an image: %w", w.describeFormat(), out, in, err)
	}
	return out, nil
}

// Outputs returns the thin-image name of every input, in order. The error wraps
// ErrParse and names, for each input whose name cannot be made, its line and
// how to fix it.
func (w *Wishlist) Outputs() ([]string, error) {
	return w.OutputsOf(w.Images())
}

// OutputsOf returns the thin-image name of each of imgs (see Expand), in order, like Outputs;
// an image a wildcard gave is named in an error with its tag and the input's line.
func (w *Wishlist) OutputsOf(imgs []Image) ([]string, error) {
	p := &parser{source: w.Path}
	var outs []string
	for _, img := range imgs {
		r, i := img.Ref, img.Input
		out, err := w.Output(r)
		if err != nil {
			line := 0
			if i < len(w.inputLines) {
				line = w.inputLines[i]
			}
			field := fmt.Sprintf("input[%d]", i)
			if i < len(w.refs) && w.refs[i].Wildcard() && !r.Wildcard() {
				field += fmt.Sprintf(" (its tag %s)", r.Tag)
			}
			fix := "fix output_format"
			if w.formatLine > 0 {
				fix += fmt.Sprintf(" (line %d)", w.formatLine)
			} else {
				fix = "add an output_format that gives an image name for it (e.g. with $(reference) or $(digest))"
			}
			if r.Tag == "" {
				fix += ", give the image a tag"
			}
			p.problems = append(p.problems, fmt.Sprintf("%s:%d: %s: %v; %s, or skip thin images with -i/--skip-thin-image",
				w.Path, line, field, err, fix))
			continue
		}
		outs = append(outs, out)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return outs, nil
}

func (w *Wishlist) describeFormat() string {
	if w.OutputFormat == "" {
		return fmt.Sprintf("the default output_format %q", imageref.DefaultOutputFormat)
	}
	return fmt.Sprintf("output_format %q", w.OutputFormat)
}

// Repo splits CvmfsRepo into the repository name and the optional
// directory inside it.
func (w *Wishlist) Repo() (repo, subdir string) {
	repo, subdir, _ = strings.Cut(w.CvmfsRepo, "/")
	return repo, subdir
}

// Ignored reports whether errors converting image are to be ignored: some
// ignoreErrors glob matches it, as written or as the whole name DUCC
// matches ("https://registry/repository:tag").
func (w *Wishlist) Ignored(image string) bool {
	names := []string{image}
	if r, err := imageref.Parse(image); err == nil {
		names = append(names, r.String())
	}
	for _, pattern := range w.IgnoreErrors {
		for _, n := range names {
			if ok, err := filepath.Match(pattern, n); err == nil && ok {
				return true
			}
		}
	}
	return false
}
