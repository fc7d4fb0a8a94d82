package flattener

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"flatbed.dev/events"
	"flatbed.dev/events/eventstest"
	"flatbed.dev/pkg/imagegen"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/store"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// describe is what the resolver reports and stores for n found under the store name name
// (registry/repository:tag or registry/repository@digest).
func describe(t *testing.T, n imagegen.Named, name string) *events.Description {
	t.Helper()
	registry, path, _ := strings.Cut(name, "/")
	repo, tag := path, ""
	if r, _, ok := strings.Cut(path, "@"); ok {
		repo = r
	} else if i := strings.LastIndex(path, ":"); i >= 0 {
		repo, tag = path[:i], path[i+1:]
	}
	desc := eventstest.Describe(t, n.Image, registry, repo, tag)
	if desc.Image.Name != name {
		t.Fatalf("image named %q, want %q (a digest name must carry the image's digest)", desc.Image.Name, name)
	}
	return desc
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
	size, _ := layers[i].Size()
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
	meta, err := layer.Extract(context.Background(), rc, fs, layer.Want{Digest: d.String(), DiffID: diff.String(), Size: size}, layer.Options{})
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
