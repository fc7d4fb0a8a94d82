package notifier

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/notification"
)

const (
	cfgDigest   = "sha256:0f35aa0000000000000000000000000000000000000000000000000000000000"
	layerDigest = "sha256:ab12000000000000000000000000000000000000000000000000000000000000"
)

func testImage() events.Image {
	return events.Image{Registry: "registry.example", Repository: "demo/hello", Tag: "1.0", Name: "registry.example/demo/hello:1.0",
		Digest: "sha256:" + strings.Repeat("1", 64), MediaType: "application/vnd.oci.image.manifest.v1+json", ConfigDigest: cfgDigest,
		LayerCount: 2}
}

// testLayers are the layers of testImage, lowest first.
func testLayers() []events.Layer {
	const mt = "application/vnd.oci.image.layer.v1.tar+gzip"
	return []events.Layer{
		{Digest: "sha256:" + strings.Repeat("2", 64), DiffID: "sha256:" + strings.Repeat("3", 64), MediaType: mt, Size: 1000},
		{Digest: layerDigest, DiffID: "sha256:" + strings.Repeat("4", 64), MediaType: mt, Size: 1001},
	}
}

var thinDigest = "sha256:" + strings.Repeat("5", 64)

func newService(t *testing.T, lines Lines) (*Service, *eventstest.Bus) {
	b := &eventstest.Bus{}
	return &Service{StoreRoot: t.TempDir(), Bus: b, Log: quietLog(), Lines: lines}, b
}

func handle(t *testing.T, s *Service, typ string, job events.Job, data any) error {
	t.Helper()
	return s.Handle(context.Background(), eventstest.Delivery(t, typ, job, data, 1))
}

func TestCompleted(t *testing.T) {
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	job.ThinImage = "https://registry.example/demo/hello_thin:1.0"
	job.SubmittedAt = time.Now().Add(-5 * time.Second)
	img := testImage()
	noThin := job
	noThin.ThinImage, noThin.SkipThin = "", true
	tests := []struct {
		name string
		job  *events.Job // nil: job
		typ  string
		data any
		want events.ConversionCompleted // without Repository, Job and Seconds
	}{
		{"thin pushed", nil, events.ThinPushedType,
			events.ThinPushed{Job: job, Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, ThinImage: job.ThinImage, ThinDigest: thinDigest},
			events.ConversionCompleted{Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, ThinImage: job.ThinImage, ThinDigest: thinDigest}},
		{"thin skipped", nil, events.ThinPushedType,
			events.ThinPushed{Job: job, Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, Skipped: true},
			events.ConversionCompleted{Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name}},
		{"already converted, no thin image wanted", &noThin, events.ImageResolvedType,
			events.ImageResolved{Job: noThin, Image: img, AlreadyConverted: true},
			events.ConversionCompleted{Image: img, FlatPath: ".flat/0f/" + strings.TrimPrefix(cfgDigest, "sha256:"), PublicPath: img.Name, AlreadyConverted: true}},
		{"already converted, thin image checked", nil, events.ThinPushedType,
			events.ThinPushed{Job: job, Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, ThinImage: job.ThinImage, ThinDigest: thinDigest, AlreadyConverted: true},
			events.ConversionCompleted{Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, ThinImage: job.ThinImage, ThinDigest: thinDigest, AlreadyConverted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := job
			if tt.job != nil {
				job = *tt.job
			}
			lines := &fakeLines{}
			s, b := newService(t, lines)
			if err := handle(t, s, tt.typ, job, tt.data); err != nil {
				t.Fatal(err)
			}
			if got := b.Types(); !slices.Equal(got, []string{events.ConversionCompletedType}) {
				t.Fatalf("published %v, want one %s", got, events.ConversionCompletedType)
			}
			got := eventstest.Decode[events.ConversionCompleted](t, b.Envelopes()[0])
			if got.Seconds < 5 || got.Seconds > 60 {
				t.Errorf("Seconds = %v, want the time since the wish (about 5)", got.Seconds)
			}
			if want := filepath.Join(s.StoreRoot, job.CvmfsRepo); got.Repository != want {
				t.Errorf("Repository = %q, want %q", got.Repository, want)
			}
			if !got.Job.SubmittedAt.Equal(job.SubmittedAt) {
				t.Errorf("Job.SubmittedAt = %v, want %v", got.Job.SubmittedAt, job.SubmittedAt)
			}
			got.Job.SubmittedAt = job.SubmittedAt
			if !reflect.DeepEqual(got.Job, job) {
				t.Errorf("Job = %+v, want %+v", got.Job, job)
			}
			if got.Image != tt.want.Image {
				t.Errorf("Image = %+v, want %+v", got.Image, tt.want.Image)
			}
			for _, c := range []struct{ what, got, want string }{
				{"FlatPath", got.FlatPath, tt.want.FlatPath},
				{"PublicPath", got.PublicPath, tt.want.PublicPath},
				{"ThinImage", got.ThinImage, tt.want.ThinImage},
				{"ThinDigest", got.ThinDigest, tt.want.ThinDigest},
			} {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
				}
			}
			if got.AlreadyConverted != tt.want.AlreadyConverted {
				t.Errorf("AlreadyConverted = %v, want %v", got.AlreadyConverted, tt.want.AlreadyConverted)
			}
			if got, want := b.Envelopes()[0].ID, events.ID(events.ConversionCompletedType, job.WishID); got != want {
				t.Errorf("event id %q, want %q (one completion per wish)", got, want)
			}
		})
	}
}

func TestNothingToReport(t *testing.T) {
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	withThin := job
	withThin.ThinImage = "https://registry.example/demo/hello_thin:1.0"
	img := testImage()
	tests := []struct {
		name string
		typ  string
		data any
	}{
		{"resolved, not converted yet", events.ImageResolvedType, events.ImageResolved{Job: job, Image: img}},
		// The thin pusher checks the thin image of an image already converted: thin.pushed ends it.
		{"already converted, thin image awaited", events.ImageResolvedType, events.ImageResolved{Job: withThin, Image: img, AlreadyConverted: true}},
		{"layer already present", events.LayerIngestedType, events.LayerIngested{Job: job, Image: img, Index: 1, Layer: testLayers()[1], AlreadyPresent: true}},
		{"flat already present", events.ImageFlattenedType, events.ImageFlattened{Job: job, Image: img, AlreadyPresent: true}},
		{"not a type the notifier reads", events.LayerRequestedType, events.LayerRequested{Job: job, Image: img, Layer: testLayers()[0]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := &fakeLines{}
			s, b := newService(t, lines)
			if err := handle(t, s, tt.typ, job, tt.data); err != nil {
				t.Fatal(err)
			}
			if len(b.Envelopes()) != 0 || len(lines.lines) != 0 {
				t.Errorf("published %v and wrote %d lines, want nothing", b.Types(), len(lines.lines))
			}
		})
	}
}

// readFile returns the JSON lines of a notification file.
func readFile(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]string
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not a flat JSON object: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// A failure is reported as DUCC does: the start and end lines of the step that failed, linked
// by one id, the end line with the error. A layer that failed is a layer conversion; a wish
// that failed before or after its layers is a flat conversion. The lines name the image by
// its store name, or as wished when the wish failed before its image was resolved.
func TestFailed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notifications.jsonl")
	nf, err := notification.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nf.Close() })
	s, b := newService(t, nf)
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	img := testImage()
	tests := []struct {
		name       string
		in         events.ImageFailed
		start, end string // the actions of the pair
		wantImage  string // the image field of both lines
	}{
		{"a layer failed", events.ImageFailed{Job: job, Image: &img, Stage: "ingester", Layer: layerDigest, Error: "unpacking layer: digest mismatch"},
			notification.ActionStartLayerConversion, notification.ActionEndLayerConversion, img.Name},
		{"the flat failed after every layer", events.ImageFailed{Job: job, Image: &img, Stage: "flattener", Error: "flattening: hard link to nothing"},
			notification.ActionStartFlatConversion, notification.ActionEndFlatConversion, img.Name},
		// No image: the wish failed before its image was resolved; named as it was wished.
		{"the wish failed before it was resolved", events.ImageFailed{Job: job, Stage: "resolver", Error: "fetching the manifest: 404"},
			notification.ActionStartFlatConversion, notification.ActionEndFlatConversion, job.Image},
	}
	written := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			b.Reset()
			if err := handle(t, s, events.ImageFailedType, job, in); err != nil {
				t.Fatal(err)
			}
			if got := b.Types(); !slices.Equal(got, []string{events.ConversionFailedType}) {
				t.Fatalf("published %v, want one %s", got, events.ConversionFailedType)
			}
			f := eventstest.Decode[events.ConversionFailed](t, b.Envelopes()[0])
			if f.Stage != in.Stage || f.Layer != in.Layer || f.Error != in.Error || f.Job.WishID != job.WishID || f.Job.Image != job.Image {
				t.Errorf("ConversionFailed = %+v, want stage/layer/error of %+v", f, in)
			}
			all := readFile(t, path)
			lines := all[written:]
			written = len(all)
			if len(lines) != 2 {
				t.Fatalf("%d notification lines, want a start and an end: %v", len(lines), lines)
			}
			start, end := lines[0], lines[1]
			if start[notification.FieldAction] != tt.start || end[notification.FieldAction] != tt.end {
				t.Errorf("actions %q, %q; want %q, %q", start[notification.FieldAction], end[notification.FieldAction], tt.start, tt.end)
			}
			if start[notification.FieldID] == "" || start[notification.FieldID] != end[notification.FieldID] {
				t.Errorf("ids %q and %q, want one non-empty id", start[notification.FieldID], end[notification.FieldID])
			}
			for k, want := range map[string]string{
				notification.FieldStatus: notification.StatusError,
				notification.FieldError:  in.Error,
			} {
				if end[k] != want {
					t.Errorf("end line %s = %q, want %q (line %v)", k, end[k], want, end)
				}
			}
			for _, l := range lines {
				if l[notification.FieldImage] != tt.wantImage || l[notification.FieldImageRequest] != job.Image {
					t.Errorf("line names image %q, request %q; want %q, %q: %v", l[notification.FieldImage], l[notification.FieldImageRequest], tt.wantImage, job.Image, l)
				}
				if in.Layer != "" && !namesLayer(l, in.Layer) {
					t.Errorf("line does not name the failed layer: %v", l)
				}
				if in.Layer == "" && (l[notification.FieldLayerDigest] != "" || l[notification.FieldLayer] != "") {
					t.Errorf("line names a layer for an image failure: %v", l)
				}
				if _, err := time.Parse(notification.TimeLayout, l[notification.FieldTime]); err != nil {
					t.Errorf("line time %q: %v", l[notification.FieldTime], err)
				}
			}
		})
	}
}

func TestFailedWithoutNotificationFile(t *testing.T) {
	s, b := newService(t, nil)
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	if err := handle(t, s, events.ImageFailedType, job, events.ImageFailed{Job: job, Stage: "resolver", Error: "boom"}); err != nil {
		t.Fatal(err)
	}
	if got := b.Types(); !slices.Equal(got, []string{events.ConversionFailedType}) {
		t.Errorf("published %v, want one %s", got, events.ConversionFailedType)
	}
}

// A notification file that cannot be written makes the delivery fail (and come again).
func TestLinesError(t *testing.T) {
	s, b := newService(t, &fakeLines{err: errors.New("disk full")})
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	if err := handle(t, s, events.ImageFailedType, job, events.ImageFailed{Job: job, Stage: "resolver", Error: "boom"}); err == nil {
		t.Error("Handle returned nil although the notification line was not written")
	}
	if len(b.Envelopes()) != 0 {
		t.Errorf("published %v before the line was written", b.Types())
	}
}

func TestLayerLines(t *testing.T) {
	lines := &fakeLines{}
	s, b := newService(t, lines)
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	img := testImage()
	layers := testLayers()
	for i, l := range layers {
		in := events.LayerIngested{Job: job, Image: img, Index: i, Layer: l, Path: "x", Bytes: int64(1000 + i), Seconds: 1.5}
		if err := handle(t, s, events.LayerIngestedType, job, in); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.Envelopes()) != 0 {
		t.Errorf("published %v for layer.ingested", b.Types())
	}
	var ids []string
	for i, l := range layers {
		var pair []map[string]string
		for _, m := range lines.lines {
			a := m[notification.FieldAction]
			if (a == notification.ActionStartLayerConversion || a == notification.ActionEndLayerConversion) && namesLayer(m, l.Digest) {
				pair = append(pair, m)
			}
		}
		if len(pair) != 2 {
			t.Fatalf("layer %d: %d start/end lines naming it, want 2: %v", i, len(pair), lines.lines)
		}
		start, end := pair[0], pair[1]
		if start[notification.FieldAction] != notification.ActionStartLayerConversion || end[notification.FieldAction] != notification.ActionEndLayerConversion {
			t.Errorf("layer %d: actions %q, %q", i, start[notification.FieldAction], end[notification.FieldAction])
		}
		if start[notification.FieldID] == "" || start[notification.FieldID] != end[notification.FieldID] {
			t.Errorf("layer %d: ids %q and %q, want one non-empty id", i, start[notification.FieldID], end[notification.FieldID])
		}
		ids = append(ids, start[notification.FieldID])
		for _, m := range []map[string]string{start, end} {
			if !namesImage(m, job, img) {
				t.Errorf("layer %d: line does not name the image: %v", i, m)
			}
		}
		if end[notification.FieldStatus] != notification.StatusOK {
			t.Errorf("layer %d: end status %q, want ok", i, end[notification.FieldStatus])
		}
		if got, want := end[notification.FieldSizeBytes], []string{"1000", "1001"}[i]; got != want {
			t.Errorf("layer %d: size_bytes %q, want %q", i, got, want)
		}
		if !strings.HasPrefix(end[notification.FieldElapsed], "1.5") {
			t.Errorf("layer %d: time_elapsed_s %q, want 1.5", i, end[notification.FieldElapsed])
		}
	}
	if ids[0] == ids[1] {
		t.Errorf("two layers share the id %q", ids[0])
	}
}

func TestFlatLines(t *testing.T) {
	lines := &fakeLines{}
	s, b := newService(t, lines)
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	img := testImage()
	in := events.ImageFlattened{Job: job, Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, Seconds: 2}
	if err := handle(t, s, events.ImageFlattenedType, job, in); err != nil {
		t.Fatal(err)
	}
	if len(b.Envelopes()) != 0 {
		t.Errorf("published %v for image.flattened", b.Types())
	}
	want := []string{notification.ActionStartFlatConversion, notification.ActionEndFlatConversion, notification.ActionPublishFlatImage}
	var got []map[string]string
	for _, l := range lines.lines {
		if slices.Contains(want, l[notification.FieldAction]) {
			got = append(got, l)
		}
	}
	var actions []string
	for _, l := range got {
		actions = append(actions, l[notification.FieldAction])
	}
	if !slices.Equal(actions, want) {
		t.Fatalf("actions %v, want %v", actions, want)
	}
	if got[0][notification.FieldID] == "" || got[0][notification.FieldID] != got[1][notification.FieldID] {
		t.Errorf("flat start/end ids %q, %q", got[0][notification.FieldID], got[1][notification.FieldID])
	}
	if got[1][notification.FieldStatus] != notification.StatusOK {
		t.Errorf("end_flat_conversion status %q, want ok", got[1][notification.FieldStatus])
	}
	pub := got[2]
	if pub[notification.FieldPublicPath] != in.PublicPath || pub[notification.FieldPrivatePath] != in.FlatPath {
		t.Errorf("publish_flat_image = %v, want public %q private %q", pub, in.PublicPath, in.FlatPath)
	}
}

// namesImage says a line names the image: as wished (job.Image) or by its store name.
func namesImage(m map[string]string, job events.Job, img events.Image) bool {
	for _, k := range []string{notification.FieldImage, notification.FieldImageRequest} {
		if v := m[k]; v != "" && (v == job.Image || v == img.Name) {
			return true
		}
	}
	return false
}

// namesLayer says a line names the layer (DUCC: hex digest in "layer" or "layer_digest").
func namesLayer(m map[string]string, digest string) bool {
	hex := strings.TrimPrefix(digest, "sha256:")
	for _, k := range []string{notification.FieldLayer, notification.FieldLayerDigest} {
		if v := m[k]; v != "" && strings.TrimPrefix(v, "sha256:") == hex {
			return true
		}
	}
	return false
}

// A layer.ingested whose index is outside the image's layers is malformed; the notifier must
// not crash the process on it, and no attempt can mend it: Decode refuses it as an invalid
// event, a permanent error (the bus reports it instead of retrying).
func TestLayerIndexOutOfRange(t *testing.T) {
	lines := &fakeLines{}
	s, b := newService(t, lines)
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	in := events.LayerIngested{Job: job, Image: testImage(), Index: 7, Layer: testLayers()[1]}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("a malformed layer.ingested crashed the notifier: %v", r)
		}
	}()
	if err := handle(t, s, events.LayerIngestedType, job, in); !events.IsPermanent(err) || !errors.Is(err, events.ErrInvalid) {
		t.Errorf("handle = %v, want a permanent invalid-event error (nothing to retry)", err)
	}
	if len(lines.lines) != 0 || len(b.Envelopes()) != 0 {
		t.Errorf("wrote %d lines and published %v for a layer that does not exist", len(lines.lines), b.Types())
	}
}
