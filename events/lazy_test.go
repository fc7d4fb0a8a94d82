package events_test

import (
	"encoding/json"
	"strings"
	"testing"

	"flatbed.dev/events"
)

// lazyJob is a wish for the lazy output alone: it needs no store repository.
func lazyJob() events.Job {
	j := sampleJob()
	j.CvmfsRepo = ""
	j.Outputs = []string{events.OutputLazy}
	j.LazyImage = "http://127.0.0.1:5001/app:1-esgz"
	j.LazyFormat = "estargz"
	return j
}

func TestLazyJobValidate(t *testing.T) {
	good := lazyJob()
	good.LazyReferrer, good.LazyOCI, good.LazyPrioritized = true, true, []string{"bin/sh"}
	if err := good.Validate(); err != nil {
		t.Fatalf("refused: %v", err)
	}
	bad := map[string]struct {
		mutate func(j *events.Job)
		want   string
	}{
		"no target":          {func(j *events.Job) { j.LazyImage = "" }, "job.lazy_image: empty"},
		"no format":          {func(j *events.Job) { j.LazyFormat = "" }, "job.lazy_format"},
		"format with a path": {func(j *events.Job) { j.LazyFormat = "../x" }, "not a lazy-pull format"},
		"target with space":  {func(j *events.Job) { j.LazyImage = "a b" }, "space"},
		"settings unasked": {func(j *events.Job) {
			j.Outputs = []string{events.OutputRelocated}
			j.RelocatePrefix = "127.0.0.1:5001/m"
		}, "does not ask for lazy"},
		"empty prioritised path": {func(j *events.Job) { j.LazyPrioritized = []string{""} }, "lazy_prioritized"},
	}
	for name, tt := range bad {
		t.Run(name, func(t *testing.T) {
			j := lazyJob()
			tt.mutate(&j)
			if err := j.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestImageLazifiedCheck(t *testing.T) {
	e := events.ImageLazified{Job: lazyJob(), Image: sampleImage(), Target: "127.0.0.1:5001/app:1-esgz@sha256:" + strings.Repeat("a", 64),
		Format: "estargz", Layers: 3, Converted: 1, Reused: 2, Bytes: 10, Seconds: 1}
	b, _ := json.Marshal(e)
	if _, err := events.Check(events.ImageLazifiedType, b); err != nil {
		t.Fatalf("refused: %v", err)
	}
	e.Converted = 5
	b, _ = json.Marshal(e)
	if _, err := events.Check(events.ImageLazifiedType, b); err == nil {
		t.Error("more layers converted than the image has passed")
	}
	e.Converted, e.Target = 1, "127.0.0.1:5001/app:1-esgz"
	b, _ = json.Marshal(e)
	if _, err := events.Check(events.ImageLazifiedType, b); err == nil {
		t.Error("a target without a digest passed")
	}
}
