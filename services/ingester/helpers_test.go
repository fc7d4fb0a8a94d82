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

// resolved is the events.Image the resolver reports for n pushed to host.
func resolved(t *testing.T, host string, img v1.Image, repo, tag string) events.Image {
	t.Helper()
	e := eventstest.Image(t, img)
	e.Registry, e.Repository, e.Tag, e.Name = host, repo, tag, host+"/"+repo+":"+tag
	return e
}
