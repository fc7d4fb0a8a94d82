package events

import (
	"fmt"
	"slices"
	"strings"
)

// The outputs a wish may ask for (Job.Outputs). Each has its own stage and result event:
// unpacked (with thin) ends with thin.pushed, or an image.resolved that found it already
// converted; relocated ends with image.relocated.
const (
	OutputUnpacked  = "unpacked"  // layers, flat tree and metadata in the store
	OutputThin      = "thin"      // the thin image pointing into the store (needs unpacked)
	OutputRelocated = "relocated" // a byte-for-byte copy under Job.RelocatePrefix
)

// KnownOutputs lists the outputs a wish may name; a wish naming another is refused rather
// than left waiting for ever.
var KnownOutputs = []string{OutputUnpacked, OutputThin, OutputRelocated, OutputLazy, OutputExported}

// maxPrefixBytes bounds Job.RelocatePrefix: a relocated name has at most 255 characters
// (docker's limit), and the prefix may add a scheme.
const maxPrefixBytes = 300

// Wants reports whether the job asks for output. A job that names no outputs asks for the
// unpacked store and the thin image.
func (j Job) Wants(output string) bool {
	if len(j.Outputs) == 0 {
		return output == OutputUnpacked || output == OutputThin
	}
	return slices.Contains(j.Outputs, output)
}

// PushesThin reports whether the job's thin image is pushed: it asks for the thin output,
// names where it goes, and was not told to skip it (-i/--skip-thin-image).
func (j Job) PushesThin() bool {
	return j.Wants(OutputThin) && !j.SkipThin && j.ThinImage != ""
}

// checkOutputs checks the outputs and the settings that go with them. The relocator parses
// the prefix (relocate.ParsePrefix); here it is only checked as text.
func (j Job) checkOutputs() error {
	seen := map[string]bool{}
	for _, o := range j.Outputs {
		if !slices.Contains(KnownOutputs, o) {
			return fmt.Errorf("job.outputs: %q is not an output flatbed makes (choose from %s)", clip(o), strings.Join(KnownOutputs, ", "))
		}
		if seen[o] {
			return fmt.Errorf("job.outputs: %q is named twice", o)
		}
		seen[o] = true
	}
	if err := j.checkExport(); err != nil {
		return err
	}
	if err := j.checkLazy(); err != nil {
		return err
	}
	if j.Wants(OutputThin) && !j.Wants(OutputUnpacked) {
		return fmt.Errorf("job.outputs: %s needs %s (the thin image points into the store)", OutputThin, OutputUnpacked)
	}
	if !j.Wants(OutputRelocated) {
		if j.RelocatePrefix != "" || j.RelocateNoFlatten {
			return fmt.Errorf("job.relocate_prefix: given, but job.outputs does not ask for %s", OutputRelocated)
		}
		return nil
	}
	if j.RelocatePrefix == "" {
		return fmt.Errorf("job.relocate_prefix: empty, but job.outputs asks for %s", OutputRelocated)
	}
	if len(j.RelocatePrefix) > maxPrefixBytes {
		return fmt.Errorf("job.relocate_prefix is %d bytes, over %d", len(j.RelocatePrefix), maxPrefixBytes)
	}
	return checkImageText("job.relocate_prefix", j.RelocatePrefix, true)
}
