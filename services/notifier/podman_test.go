package notifier

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/notification"
)

// An image listed in the podman store gets DUCC's two podman lines, exactly as DUCC's
// CreatePodmanImageStore writes them (action and image; the end with time_elapsed_s; no id,
// no status), plus the time and pid every line of the file has; after the flat lines, as
// DUCC converts the flat image before the podman one. With -p, or a tree already present
// and not listed, there are none.
func TestPodmanLines(t *testing.T) {
	job := eventstest.Job("https://registry.example/demo/hello:1.0")
	img := testImage()
	for name, tc := range map[string]struct {
		in   events.ImageFlattened
		want []string // actions, in order
	}{
		"built and listed": {events.ImageFlattened{Job: job, Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, Seconds: 2, Podman: true, PodmanSeconds: 0.25},
			[]string{"start_flat_conversion", "end_flat_conversion", "publish_flat_image", "start_podman_ingestion", "end_podman_ingestion"}},
		"present and listed": {events.ImageFlattened{Job: job, Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, AlreadyPresent: true, Podman: true, PodmanSeconds: 0.25},
			[]string{"start_podman_ingestion", "end_podman_ingestion"}},
		"skip podman": {events.ImageFlattened{Job: job, Image: img, FlatPath: ".flat/0f/x", PublicPath: img.Name, Seconds: 2},
			[]string{"start_flat_conversion", "end_flat_conversion", "publish_flat_image"}},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "notifications")
			f, err := notification.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := newService(t, f)
			if err := handle(t, s, events.ImageFlattenedType, job, tc.in); err != nil {
				t.Fatal(err)
			}
			f.Close()
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var actions []string
			for _, raw := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				l, err := notification.Parse([]byte(raw))
				if err != nil {
					t.Fatal(err)
				}
				actions = append(actions, l[notification.FieldAction])
				if !strings.Contains(l[notification.FieldAction], "podman") {
					continue
				}
				if _, err := time.Parse(notification.TimeLayout, l[notification.FieldTime]); err != nil {
					t.Errorf("time %q: %v", l[notification.FieldTime], err)
				}
				if l[notification.FieldPID] != strconv.Itoa(os.Getpid()) {
					t.Errorf("pid %q", l[notification.FieldPID])
				}
				delete(l, notification.FieldTime)
				delete(l, notification.FieldPID)
				want := notification.Line{"action": "start_podman_ingestion", "image": "registry.example/demo/hello:1.0"}
				if l[notification.FieldAction] == "end_podman_ingestion" {
					want = notification.Line{"action": "end_podman_ingestion", "image": "registry.example/demo/hello:1.0", "time_elapsed_s": "0.250000"}
				}
				if len(l) != len(want) {
					t.Errorf("line %s, want exactly %v with time and pid", raw, want)
				}
				for k, v := range want {
					if l[k] != v {
						t.Errorf("line %s: %s = %q, want %q", raw, k, l[k], v)
					}
				}
			}
			if !slices.Equal(actions, tc.want) {
				t.Errorf("actions %q, want %q", actions, tc.want)
			}
		})
	}
}
