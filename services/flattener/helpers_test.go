package flattener

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/store"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// image is the events.Image the resolver reports for n under the store name name.
func image(t *testing.T, n imagegen.Named, name string) events.Image {
	t.Helper()
	img := eventstest.Image(t, n.Image)
	m, err := n.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := n.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	img.Name, img.MediaType = name, string(m.MediaType)
	img.Config.Entrypoint, img.Config.WorkingDir = cf.Config.Entrypoint, cf.Config.WorkingDir
	return img
}

// ingest puts layer i of n into st the way the ingester does (pkg/layer into a temporary
// directory, then store.Publish). The ingester service itself is another module: importing
// it here would make this module's go.mod depend on a sibling service.
func ingest(t *testing.T, st *store.Store, n imagegen.Named, i int) {
	t.Helper()
	layers, err := n.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[i].Digest()
	diff, _ := layers[i].DiffID()
	final := st.LayerDir(d.String())
	tmp, err := st.TempDir(final)
	if err != nil {
		t.Fatal(err)
	}
	fs := filepath.Join(tmp, "layerfs")
	if err := os.Mkdir(fs, 0o755); err != nil {
		t.Fatal(err)
	}
	rc, err := layers[i].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	meta, err := layer.Extract(context.Background(), rc, fs, layer.Want{Digest: d.String(), DiffID: diff.String()}, layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := layer.WriteMeta(filepath.Join(tmp, ".metadata"), meta); err != nil {
		t.Fatal(err)
	}
	if won, err := st.Publish(tmp, final); err != nil || !won {
		t.Fatalf("publishing layer %d: %v, %v", i, won, err)
	}
}
