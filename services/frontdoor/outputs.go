package frontdoor

import (
	"slices"

	"flatbed.dev/events"
)

// Output is the state of one output a wish asked for: unpacked (the store), thin (the thin
// image), relocated, lazy, exported. An image's state lists each of its wish's outputs, so a
// wish that asked for several shows which have ended, and where each went.
type Output struct {
	Name  string `json:"name"`
	State string `json:"state"` // pending, done, failed
	// Result is where the output went: the public path (unpacked), the thin image with its
	// digest (thin), the reference of the relocated, lazy-pull or exported image.
	Result string `json:"result,omitempty"`
}

// The states of an output.
const (
	OutputPending = "pending"
	OutputDone    = "done"
	OutputFailed  = "failed"
)

// outputsOf lists the outputs job asks for, each pending: the thin image only when one is
// pushed (a wish may ask for it and skip it, -i).
func outputsOf(job events.Job) []Output {
	var out []Output
	for _, o := range events.KnownOutputs {
		if !job.Wants(o) || (o == events.OutputThin && !job.PushesThin()) {
			continue
		}
		out = append(out, Output{Name: o, State: OutputPending})
	}
	return out
}

// set marks output name of outs (when the wish asked for it) with state and result.
func set(outs []Output, name, state, result string) {
	for i := range outs {
		if outs[i].Name == name {
			outs[i].State, outs[i].Result = state, result
		}
	}
}

// thinResult is the thin image with its digest, as it was pushed.
func thinResult(image, digest string) string {
	if image == "" || digest == "" {
		return image
	}
	return image + "@" + digest
}

// stageOutputs are the outputs a stage's failure ends; a stage not named (the resolver, the
// bus, a stage flatbed does not run) fails every output not ended yet.
var stageOutputs = map[string][]string{
	"ingester":   {events.OutputUnpacked, events.OutputThin},
	"flattener":  {events.OutputUnpacked, events.OutputThin},
	"thinpusher": {events.OutputThin},
	"relocator":  {events.OutputRelocated},
	"lazy":       {events.OutputLazy},
	"exporter":   {events.OutputExported},
}

// failOutputs marks the outputs the failed stage ends as failed.
func failOutputs(outs []Output, stage string) {
	names, ok := stageOutputs[stage]
	for i := range outs {
		if !ok || slices.Contains(names, outs[i].Name) {
			outs[i].State = OutputFailed
		}
	}
}

// carryOutputs keeps in next what cur, a state of the same submission, already knows (the
// events of one wish's outputs come in any order): an output done there stays done, even
// when a later failure of another stage marks every output failed, and one failed there
// stays failed while next knows nothing newer of it.
func carryOutputs(cur, next *Image) {
	if cur.WishID != next.WishID {
		return
	}
	for i, o := range next.Outputs {
		for _, c := range cur.Outputs {
			if c.Name == o.Name && (c.State == OutputDone || (o.State == OutputPending && c.State != OutputPending)) {
				next.Outputs[i] = c
			}
		}
	}
}
