package imagegen

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/validate"

	"flatbed.dev/pkg/layer"
)

// TestHostile checks the hostile images are valid images, small, deterministic, and that
// their hostile layer fails in the layer package with the advertised reason and sentinel.
func TestHostile(t *testing.T) {
	imgs := append(Hostile(), HostileBomb())
	again := append(Hostile(), HostileBomb())
	for i, n := range imgs {
		t.Run(n.Name, func(t *testing.T) {
			if err := validate.Image(n.Image); err != nil {
				t.Fatal(err)
			}
			d1, _ := n.Image.Digest()
			d2, _ := again[i].Image.Digest()
			if d1 != d2 {
				t.Errorf("not deterministic: %s, %s", d1, d2)
			}
			reason := HostileReason(n.Ref())
			if reason == "" {
				t.Fatal("no reason")
			}
			ls, err := n.Image.Layers()
			if err != nil || len(ls) != 2 {
				t.Fatalf("%d layers (%v), want an innocent and a hostile one", len(ls), err)
			}
			var total int64
			for _, l := range ls {
				s, _ := l.Size()
				total += s
			}
			if total > 256<<10 {
				t.Errorf("layers are %d bytes, want small ones", total)
			}
			hostile := ls[1]
			dg, _ := hostile.Digest()
			diff, _ := hostile.DiffID()
			rc, err := hostile.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			top := t.TempDir()
			dir := filepath.Join(top, "a/b/c/d/e/layerfs")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			opts := layer.Options{Whiteouts: layer.WhiteoutOCI}
			if n.Name == HostileBombName {
				opts.MaxUncompressedBytes = 8 << 20 // as e2e passes --max-layer-bytes
			}
			size, err := hostile.Size()
			if err != nil {
				t.Fatal(err)
			}
			_, err = layer.Extract(context.Background(), rc, dir, layer.Want{Digest: dg.String(), DiffID: diff.String(), Size: size}, opts)
			if err == nil || !(errors.Is(err, layer.ErrUnsafe) || errors.Is(err, layer.ErrLimit)) {
				t.Fatalf("err = %v, want ErrUnsafe or ErrLimit", err)
			}
			if !strings.Contains(err.Error(), reason) {
				t.Errorf("error %q lacks %q", err, reason)
			}
			if n.Name == HostileBombName {
				return
			}
			// Without a limit set, only the bomb converts.
			rc2, _ := hostile.Compressed()
			defer rc2.Close()
			dir2 := filepath.Join(top, "again")
			os.Mkdir(dir2, 0o755)
			if _, err := layer.Extract(context.Background(), rc2, dir2, layer.Want{Digest: dg.String(), DiffID: diff.String(), Size: size}, layer.Options{Whiteouts: layer.WhiteoutOCI}); err == nil || errors.Is(err, layer.ErrMalformed) {
				t.Error("hostile layer accepted with the default limits")
			}
		})
	}
	if HostileReason("hostile/traversal:v2") != "" || HostileReason(DemoHello+":1.0") != "" {
		t.Error("HostileReason of a non-hostile ref")
	}
}
