package flatten

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"flatbed.dev/pkg/layer"
)

// BenchmarkBuild flattens 3 layers of 2000 small files each, every layer overwriting a third
// of the previous one's files.
func BenchmarkBuild(b *testing.B) { benchmarkBuild(b, Options{}) }

// BenchmarkBuildLinked is BenchmarkBuild with the files hard-linked to the layers'.
func BenchmarkBuildLinked(b *testing.B) { benchmarkBuild(b, Options{LinkFiles: true}) }

func benchmarkBuild(b *testing.B, opts Options) {
	var layers []Layer
	for i := range 3 {
		l := newLayerFS(b, layer.WhiteoutOCI)
		for j := range 2000 {
			l.file(fmt.Sprintf("d%02d/f%04d", j%50, j+i*1333), fmt.Sprintf("layer %d file %d", i, j), 0o644)
		}
		layers = append(layers, l.layer(fmt.Sprintf("sha256:bench%d", i)))
	}
	tmp := b.TempDir()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		dst := filepath.Join(tmp, fmt.Sprint(i))
		if err := os.Mkdir(dst, 0o700); err != nil {
			b.Fatal(err)
		}
		if _, err := Build(context.Background(), dst, layers, opts); err != nil {
			b.Fatal(err)
		}
	}
}
