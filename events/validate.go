package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// Every event is checked where it enters a service (anyone on the bus may publish): each data
// type's Validate says whether its fields are well-formed, and above all that no field that a
// stage turns into a path, a registry address or a command argument can name anything outside
// what it should. A handler never sees an event that fails it.

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid event")

// MaxLayers bounds the layers of one image an event may name (the resolver's own limit,
// --max-layers, is lower).
const MaxLayers = 10000

var (
	idRe        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	digestRe    = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
	hostRe      = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:[0-9]{1,5})?$`)
	componentRe = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$`)
	tagRe       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	repoRe      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9._-]+)*$`)
	mediaTypeRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)
	platformRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}(/[a-z0-9][a-z0-9_.-]{0,63})?$`) // no "." or ".." component: the arch and variant name directories
	stageRe     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)
)

// Check decodes data as the event type t and validates it, returning the decoded value
// (a pointer to t's data type).
func Check(t string, data []byte) (any, error) {
	proto, ok := Types()[t]
	if !ok {
		return nil, fmt.Errorf("%w: unknown event type %q", ErrInvalid, t)
	}
	v := proto // Types makes new values on every call
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("%w: %s data: %w", ErrInvalid, t, err)
	}
	if err := v.(validator).Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, t, err)
	}
	return v, nil
}

type validator interface{ Validate() error }

// Validate checks a job: the ids, the image as wished, and the repository, which becomes a
// directory under the store root.
func (j Job) Validate() error {
	if err := j.validateIDs(); err != nil {
		return err
	}
	if err := checkImageText("job.image", j.Image, true); err != nil {
		return err
	}
	if err := j.checkOutputs(); err != nil {
		return err
	}
	// Only the unpacked output writes into the store; a relocation needs no repository.
	if j.Wants(OutputUnpacked) || j.CvmfsRepo != "" {
		if err := CheckRepo(j.CvmfsRepo); err != nil {
			return fmt.Errorf("job.cvmfs_repo: %w", err)
		}
	}
	if err := checkImageText("job.thin_image", j.ThinImage, false); err != nil {
		return err
	}
	return checkText("job.user", j.User, 256)
}

func (j Job) validateIDs() error {
	if !idRe.MatchString(j.WishID) {
		return fmt.Errorf("job.wish_id %q: want 1 to 128 letters, digits, '.', '_', ':' or '-'", clip(j.WishID))
	}
	if !idRe.MatchString(j.CorrelationID) {
		return fmt.Errorf("job.correlation_id %q: want 1 to 128 letters, digits, '.', '_', ':' or '-'", clip(j.CorrelationID))
	}
	return nil
}

// failureJob is the check for a job in a failure report: the ids must be right, the rest may
// be missing (a failure may report an event whose job was not valid), but what is there must
// be well-formed.
func (j Job) failureJob() error {
	if err := j.validateIDs(); err != nil {
		return err
	}
	if err := checkImageText("job.image", j.Image, false); err != nil {
		return err
	}
	if j.CvmfsRepo != "" {
		if err := CheckRepo(j.CvmfsRepo); err != nil {
			return fmt.Errorf("job.cvmfs_repo: %w", err)
		}
	}
	if err := checkImageText("job.thin_image", j.ThinImage, false); err != nil {
		return err
	}
	if err := j.checkOutputs(); err != nil {
		return err
	}
	return checkText("job.user", j.User, 256)
}

// CheckRepo checks a CVMFS repository name with an optional sub-directory, e.g.
// "unpacked.cern.ch" or "unpacked.cern.ch/sub/dir": no "." or ".." components, no leading
// '/', nothing but letters, digits, '.', '_' and '-'.
func CheckRepo(repo string) error {
	switch {
	case repo == "":
		return errors.New("empty repository")
	case len(repo) > 255:
		return fmt.Errorf("repository %q is longer than 255 bytes", clip(repo))
	case !repoRe.MatchString(repo):
		return fmt.Errorf("%q is not a repository name with an optional sub-directory", clip(repo))
	}
	for _, c := range strings.Split(repo, "/") {
		if c == "." || c == ".." {
			return fmt.Errorf("%q has a %q component", repo, c)
		}
	}
	return nil
}

// Validate checks an image reference: its name becomes the public path and the metadata
// directory in the store, its digests name store directories.
func (i Image) Validate() error {
	if !hostRe.MatchString(i.Registry) || len(i.Registry) > 255 {
		return fmt.Errorf("image.registry %q is not a host name[:port]", clip(i.Registry))
	}
	if i.Repository == "" || len(i.Repository) > 255 {
		return fmt.Errorf("image.repository %q: want 1 to 255 bytes", clip(i.Repository))
	}
	for _, c := range strings.Split(i.Repository, "/") {
		if !componentRe.MatchString(c) {
			return fmt.Errorf("image.repository %q: component %q is not lower-case letters and digits separated by '.', '_', '__' or '-'", clip(i.Repository), clip(c))
		}
	}
	if i.Tag != "" && !tagRe.MatchString(i.Tag) {
		return fmt.Errorf("image.tag %q is not a tag", clip(i.Tag))
	}
	if err := checkDigest("image.digest", i.Digest); err != nil {
		return err
	}
	if err := checkDigest("image.config_digest", i.ConfigDigest); err != nil {
		return err
	}
	want := i.Registry + "/" + i.Repository + "@" + i.Digest
	if i.Tag != "" {
		want = i.Registry + "/" + i.Repository + ":" + i.Tag
	}
	// An index wished by digest is named by the index's digest; Digest is the manifest picked.
	byIndex := i.Tag == "" && i.IndexDigest != "" && i.Name == i.Registry+"/"+i.Repository+"@"+i.IndexDigest
	if i.Name != want && !byIndex {
		return fmt.Errorf("image.name %q does not match its registry, repository and tag (%q)", clip(i.Name), want)
	}
	if !mediaTypeRe.MatchString(i.MediaType) {
		return fmt.Errorf("image.media_type %q is not a media type", clip(i.MediaType))
	}
	if i.Platform != "" && !platformRe.MatchString(i.Platform) {
		return fmt.Errorf("image.platform %q is not os/arch[/variant]", clip(i.Platform))
	}
	if i.LayerCount < 1 || i.LayerCount > MaxLayers {
		return fmt.Errorf("image.layer_count %d: want 1 to %d", i.LayerCount, MaxLayers)
	}
	if i.IndexDigest != "" {
		if err := checkDigest("image.index_digest", i.IndexDigest); err != nil {
			return err
		}
		if i.Platform == "" {
			return fmt.Errorf("image.index_digest names an index, but image.platform does not say which of its manifests image.digest is")
		}
	}
	return nil
}

// Validate checks a layer descriptor: its digest names a store directory.
func (l Layer) Validate() error {
	if err := checkDigest("layer.digest", l.Digest); err != nil {
		return err
	}
	if err := checkDigest("layer.diff_id", l.DiffID); err != nil {
		return err
	}
	if !mediaTypeRe.MatchString(l.MediaType) {
		return fmt.Errorf("layer %s: media type %q is not a media type", l.Digest, clip(l.MediaType))
	}
	if l.Size <= 0 {
		return fmt.Errorf("layer %s: the descriptor's size is %d; a layer blob is never empty, so the image's manifest is wrong", l.Digest, l.Size)
	}
	return nil
}

func (e *WishSubmitted) Validate() error { return e.Job.Validate() }

func (e *ImageResolved) Validate() error {
	return all(e.Job.Validate, e.Image.Validate, func() error { return checkPlatforms(e.Image, e.Platforms) })
}

func (e *LayerRequested) Validate() error {
	return all(e.Job.Validate, e.Image.Validate, func() error { return checkIndex(e.Index, e.Image) }, e.Layer.Validate,
		func() error { return checkAgain(e.Again) })
}

func (e *LayerIngested) Validate() error {
	return all(e.Job.Validate, e.Image.Validate, func() error { return checkIndex(e.Index, e.Image) }, e.Layer.Validate,
		func() error { return checkRel("path", e.Path) },
		func() error { return checkNonNegative("bytes", float64(e.Bytes), e.Seconds) },
		func() error { return checkAgain(e.Again) })
}

// MaxAgain bounds how often the flattener requests a layer again that went missing from the
// store after it was ingested, before it fails the wish naming the layer.
const MaxAgain = 3

func checkAgain(n int) error {
	if n < 0 || n > MaxAgain {
		return fmt.Errorf("again: %d is not between 0 and %d", n, MaxAgain)
	}
	return nil
}

func (e *ImageFlattened) Validate() error {
	return all(e.Job.Validate, e.Image.Validate, func() error { return checkFlatPlatforms(e.Image, e.Platforms) },
		func() error { return checkRel("flat_path", e.FlatPath) },
		func() error { return checkRel("public_path", e.PublicPath) },
		func() error { return checkNonNegative("seconds and podman_seconds", e.Seconds, e.PodmanSeconds) })
}

func (e *ThinPushed) Validate() error {
	return all(e.Job.Validate, e.Image.Validate,
		func() error { return checkRel("flat_path", e.FlatPath) },
		func() error { return checkRel("public_path", e.PublicPath) },
		func() error { return checkImageText("thin_image", e.ThinImage, false) },
		func() error { return checkOptionalDigest("thin_digest", e.ThinDigest) },
		func() error { return checkNonNegative("seconds", e.Seconds) })
}

func (e *ImageRelocated) Validate() error {
	return all(e.Job.Validate, e.Image.Validate,
		func() error { return checkPinned("target", e.Target, true) },
		func() error { return checkNonNegative("seconds", e.Seconds) })
}

func (e *ImageFailed) Validate() error {
	return all(e.Job.failureJob,
		func() error {
			if e.Image == nil {
				return nil
			}
			return e.Image.Validate()
		},
		func() error { return checkStage(e.Stage) },
		func() error { return checkOptionalDigest("layer", e.Layer) },
		func() error { return checkText("error", e.Error, 64<<10) })
}

func (e *ConversionCompleted) Validate() error {
	return all(e.Job.Validate, e.Image.Validate,
		func() error { return checkText("repository", e.Repository, 4096) },
		func() error { return checkRel("flat_path", e.FlatPath) },
		func() error { return checkRel("public_path", e.PublicPath) },
		func() error { return checkImageText("thin_image", e.ThinImage, false) },
		func() error { return checkOptionalDigest("thin_digest", e.ThinDigest) },
		func() error { return checkPinned("exported", e.Exported, false) },
		func() error { return checkPinned("relocated", e.Relocated, false) },
		func() error { return checkPinned("lazy", e.Lazy, false) })
}

func (e *ConversionFailed) Validate() error {
	return all(e.Job.failureJob,
		func() error { return checkStage(e.Stage) },
		func() error { return checkOptionalDigest("layer", e.Layer) },
		func() error { return checkText("error", e.Error, 64<<10) })
}

func all(checks ...func() error) error {
	for _, c := range checks {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

func checkIndex(i int, img Image) error {
	if i < 0 || i >= img.LayerCount {
		return fmt.Errorf("index %d is not a layer of the image (it has %d)", i, img.LayerCount)
	}
	return nil
}

func checkDigest(field, d string) error {
	if !digestRe.MatchString(d) {
		return fmt.Errorf("%s %q is not a digest (sha256:<64 hex digits>)", field, clip(d))
	}
	return nil
}

func checkOptionalDigest(field, d string) error {
	if d == "" {
		return nil
	}
	return checkDigest(field, d)
}

func checkStage(s string) error {
	if !stageRe.MatchString(s) {
		return fmt.Errorf("stage %q is not a stage name", clip(s))
	}
	return nil
}

// checkRel checks a path relative to the repository: no leading '/', no "." or ".."
// components, no control characters.
func checkRel(field, p string) error {
	if p == "" {
		return nil
	}
	if err := checkText(field, p, 4096); err != nil {
		return err
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%s %q is not relative", field, clip(p))
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return fmt.Errorf("%s %q has an empty, '.' or '..' component", field, clip(p))
		}
	}
	return nil
}

// checkImageText checks an image name as a string (the services parse it): bounded, no
// spaces or control characters.
func checkImageText(field, s string, required bool) error {
	if s == "" {
		if required {
			return fmt.Errorf("%s is empty", field)
		}
		return nil
	}
	if len(s) > 1024 {
		return fmt.Errorf("%s is %d bytes, over 1024", field, len(s))
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("%s %q has a space or control character", field, clip(s))
		}
	}
	return nil
}

// checkPinned checks an image name that ends with its digest, "…@sha256:<hex>".
func checkPinned(field, s string, required bool) error {
	if err := checkImageText(field, s, required); err != nil || s == "" {
		return err
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 {
		return fmt.Errorf("%s %q does not end with @digest", field, clip(s))
	}
	return checkDigest(field+" digest", s[at+1:])
}

// checkText checks free text: bounded, valid UTF-8 without control characters but newlines
// and tabs.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes, over %d", field, len(s), max)
	}
	for _, r := range s {
		if r == unicode.ReplacementChar || (unicode.IsControl(r) && r != '\n' && r != '\t') {
			return fmt.Errorf("%s has a control character or invalid UTF-8", field)
		}
	}
	return nil
}

func checkNonNegative(field string, vs ...float64) error {
	for _, v := range vs {
		if v < 0 || v != v {
			return fmt.Errorf("%s: negative or not a number", field)
		}
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
