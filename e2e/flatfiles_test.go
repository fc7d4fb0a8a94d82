package e2e

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/e2e/harness"
	"flatbed.dev/pkg/store"
)

// By default a flat tree's files are the layers' files (hard links); --flat-files copy gives
// the tree copies of its own.
func TestFlatFilesLinkOrCopy(t *testing.T) {
	reg := harness.StartRegistry(t)
	tiny := tarOf(t, map[string]string{"etc/hello": "hello\n"})
	gz := gzipOf(t, tiny)
	rawImage(t, reg.Host, "plain/files:v1", configOf(t, []string{sha256Of(tiny)}, nil), []rawLayer{{rawBlob{gz, types.DockerLayer}, int64(len(gz))}})
	wl := writeRawWishlist(t, reg.Host, []string{"plain/files:v1"})
	for mode, wantShared := range map[string]bool{"link": true, "copy": false} {
		t.Run(mode, func(t *testing.T) {
			storeRoot := t.TempDir()
			t.Cleanup(func() { store.RemoveAll(storeRoot) })
			runFlatbed(t, 0, "convert", wl, "--store-root", storeRoot, "--state-dir", t.TempDir(), "-i", "--flat-files", mode)
			st := store.New(filepath.Join(storeRoot, mpRepo))
			var flat, layer syscall.Stat_t
			if err := syscall.Stat(filepath.Join(st.PublicPath(reg.Host+"/plain/files:v1"), "etc", "hello"), &flat); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Stat(filepath.Join(st.LayerFS(sha256Of(gz)), "etc", "hello"), &layer); err != nil {
				t.Fatal(err)
			}
			if shared := flat.Ino == layer.Ino; shared != wantShared {
				t.Errorf("--flat-files %s: the flat file shares the layer's inode: %v, want %v", mode, shared, wantShared)
			}
			if b, _ := os.ReadFile(filepath.Join(st.PublicPath(reg.Host+"/plain/files:v1"), "etc", "hello")); string(b) != "hello\n" {
				t.Errorf("flat file reads %q", b)
			}
		})
	}
}
