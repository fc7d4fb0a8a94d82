package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"flatbed.dev/events"
)

func TestWants(t *testing.T) {
	tests := []struct {
		outputs []string
		want    map[string]bool
	}{
		{nil, map[string]bool{events.OutputUnpacked: true, events.OutputThin: true, events.OutputRelocated: false}},
		{[]string{events.OutputRelocated}, map[string]bool{events.OutputUnpacked: false, events.OutputThin: false, events.OutputRelocated: true}},
		{[]string{events.OutputUnpacked, events.OutputRelocated}, map[string]bool{events.OutputUnpacked: true, events.OutputThin: false, events.OutputRelocated: true}},
	}
	for _, tt := range tests {
		job := events.Job{Outputs: tt.outputs}
		for o, want := range tt.want {
			if got := job.Wants(o); got != want {
				t.Errorf("outputs %v: Wants(%s) = %v, want %v", tt.outputs, o, got, want)
			}
		}
	}
}

// relocateJob is a wish for the relocated output alone: it needs no store repository.
func relocateJob() events.Job {
	j := sampleJob()
	j.CvmfsRepo = ""
	j.Outputs = []string{events.OutputRelocated}
	j.RelocatePrefix = "http://127.0.0.1:5001/mirror"
	return j
}

func TestJobOutputsValidate(t *testing.T) {
	valid := map[string]func(j *events.Job){
		"no outputs (unpacked and thin)": func(j *events.Job) { *j = sampleJob() },
		"relocated alone, no repository": func(j *events.Job) {},
		"all three": func(j *events.Job) {
			j.Outputs = []string{"unpacked", "thin", "relocated"}
			j.CvmfsRepo = "unpacked.example.org"
		},
		"no flatten": func(j *events.Job) { j.RelocateNoFlatten = true },
	}
	for name, mutate := range valid {
		t.Run(name, func(t *testing.T) {
			j := relocateJob()
			mutate(&j)
			if err := j.Validate(); err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
	invalid := map[string]struct {
		mutate func(j *events.Job)
		want   string
	}{
		"unknown output":           {func(j *events.Job) { j.Outputs = []string{"relocated", "pushed"} }, `"pushed" is not an output`},
		"output twice":             {func(j *events.Job) { j.Outputs = []string{"relocated", "relocated"} }, "named twice"},
		"thin without unpacked":    {func(j *events.Job) { j.Outputs = []string{"thin"} }, "thin needs unpacked"},
		"unpacked, no repository":  {func(j *events.Job) { j.Outputs = []string{"unpacked", "relocated"} }, "job.cvmfs_repo"},
		"relocated without prefix": {func(j *events.Job) { j.RelocatePrefix = "" }, "relocate_prefix: empty"},
		"prefix without relocated": {func(j *events.Job) { *j = sampleJob(); j.RelocatePrefix = "example.com/m" }, "does not ask for relocated"},
		"prefix with a space":      {func(j *events.Job) { j.RelocatePrefix = "example.com/a b" }, "space or control character"},
		"prefix with a newline":    {func(j *events.Job) { j.RelocatePrefix = "example.com/a\nb" }, "space or control character"},
		"prefix too long":          {func(j *events.Job) { j.RelocatePrefix = "example.com/" + strings.Repeat("a", 300) }, "over 300"},
	}
	for name, tt := range invalid {
		t.Run(name, func(t *testing.T) {
			j := relocateJob()
			tt.mutate(&j)
			err := j.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// A wish of before outputs existed reads as one for the unpacked store and the thin image,
// and a job without outputs is written as before.
func TestJobWithoutOutputsIsUnchanged(t *testing.T) {
	old := `{"wish_id":"w","correlation_id":"c","image":"http://r.example/x:1","cvmfs_repo":"u.example.org","submitted_at":"2024-01-01T00:00:00Z"}`
	var j events.Job
	if err := json.Unmarshal([]byte(old), &j); err != nil {
		t.Fatal(err)
	}
	if err := j.Validate(); err != nil || !j.Wants(events.OutputUnpacked) || !j.Wants(events.OutputThin) || j.Wants(events.OutputRelocated) {
		t.Errorf("old wish: Validate = %v, outputs %v", err, j.Outputs)
	}
	b, _ := json.Marshal(j)
	if string(b) != old {
		t.Errorf("written as %s, want %s", b, old)
	}
}

func TestImageRelocatedValidate(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	good := events.ImageRelocated{Job: relocateJob(), Image: sampleImage(), Target: "127.0.0.1:5001/mirror/x-0123:1@" + digest, Seconds: 1}
	for name, target := range map[string]string{
		"empty":          "",
		"no digest":      "127.0.0.1:5001/mirror/x:1",
		"bad digest":     "127.0.0.1:5001/mirror/x:1@sha256:zz",
		"with a newline": "127.0.0.1:5001/mirror/x:1\n@" + digest,
	} {
		e := good
		e.Target = target
		b, _ := json.Marshal(e)
		if _, err := events.Check(events.ImageRelocatedType, b); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("%s target: Check = %v, want ErrInvalid", name, err)
		}
	}
	b, _ := json.Marshal(good)
	if _, err := events.Check(events.ImageRelocatedType, b); err != nil {
		t.Errorf("valid event refused: %v", err)
	}
}

// The failure report of a relocate-only wish keeps its outputs, so the notifier knows the wish
// had no unpacked output to report on.
func TestSalvageKeepsOutputs(t *testing.T) {
	data, _ := json.Marshal(events.ImageRelocated{Job: relocateJob()})
	job, _, ok := events.Salvage(data, "", "", "")
	if !ok || job.Wants(events.OutputUnpacked) || job.RelocatePrefix != relocateJob().RelocatePrefix {
		t.Errorf("Salvage = %+v, %v", job, ok)
	}
	bad := relocateJob()
	bad.Outputs = []string{"pushed"}
	data, _ = json.Marshal(events.ImageRelocated{Job: bad})
	if job, _, _ := events.Salvage(data, "", "", ""); job.Outputs != nil || job.RelocatePrefix != "" {
		t.Errorf("Salvage kept outputs that are not valid: %+v", job)
	}
}
