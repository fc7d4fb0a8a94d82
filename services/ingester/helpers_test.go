package ingester

import (
	"io"
	"log/slog"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// resolved is what the resolver reports for img pushed to host as repo:tag.
func resolved(t *testing.T, host string, img v1.Image, repo, tag string) *events.Description {
	t.Helper()
	return eventstest.Describe(t, img, host, repo, tag)
}
