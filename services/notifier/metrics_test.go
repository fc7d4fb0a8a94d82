package notifier

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"flatbed.dev/events"
	"flatbed.dev/events/bus/metric"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/notification"
)

// What /metrics shows after wishes ended: conversions by result, failures by stage (a stage
// flatbed does not run as other), the time since submission of each, and the notification
// lines by action.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, _ := newService(t, &fakeLines{})
	s.Metrics = NewMetrics(reg)
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	job.SubmittedAt = time.Now().Add(-3 * time.Second)
	job.ThinImage = "https://registry.example/demo/hello_thin:1.0"
	img := testImage()

	l := testLayers()[1]
	must(t, handle(t, s, events.LayerIngestedType, job, events.LayerIngested{Job: job, Image: img, Index: 1, Layer: l, Path: "x", Bytes: 1001, Seconds: 1}))
	must(t, handle(t, s, events.ThinPushedType, job, events.ThinPushed{Job: job, Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name,
		ThinImage: job.ThinImage, ThinDigest: thinDigest}))
	noThin := job
	noThin.WishID, noThin.ThinImage, noThin.SkipThin = "w-again", "", true
	must(t, handle(t, s, events.ImageResolvedType, noThin, events.ImageResolved{Job: noThin, Image: img, AlreadyConverted: true}))
	failed := job
	failed.WishID = "w-failed"
	must(t, handle(t, s, events.ImageFailedType, failed, events.ImageFailed{Job: failed, Image: &img, Stage: "ingester", Layer: layerDigest, Error: "digest mismatch"}))
	stranger := job
	stranger.WishID, stranger.SubmittedAt = "w-stranger", time.Time{} // no submission time: no duration
	must(t, handle(t, s, events.ImageFailedType, stranger, events.ImageFailed{Job: stranger, Stage: "someones-stage", Error: "boom"}))

	got, err := metric.Scrape(reg)
	if err != nil {
		t.Fatal(err)
	}
	lines := func(action string) string { return `flatbed_notifier_lines_written_total{action="` + action + `"}` }
	for k, want := range map[string]float64{
		`flatbed_notifier_conversions_total{result="converted"}`:         1,
		`flatbed_notifier_conversions_total{result="already_converted"}`: 1,
		`flatbed_notifier_conversions_total{result="failed"}`:            2,
		`flatbed_notifier_failures_total{stage="ingester"}`:              1,
		`flatbed_notifier_failures_total{stage="other"}`:                 1,
		`flatbed_notifier_wish_seconds_count{result="completed"}`:        2,
		`flatbed_notifier_wish_seconds_count{result="failed"}`:           1,
		lines(notification.ActionStartLayerConversion):                   2, // the ingested layer's and the failed layer's
		lines(notification.ActionEndLayerConversion):                     2,
		lines(notification.ActionStartFlatConversion):                    1, // the stranger's failure, before any layer
		lines(notification.ActionEndFlatConversion):                      1,
		lines(notification.ActionPublishLayer):                           1,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if sum := got[`flatbed_notifier_wish_seconds_sum{result="completed"}`]; sum < 5.9 || sum > 60 {
		t.Errorf("wish seconds of two completions submitted 3s ago: sum %v", sum)
	}
	if t.Failed() {
		t.Logf("scraped: %v", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
