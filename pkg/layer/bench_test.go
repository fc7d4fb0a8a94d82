package layer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// genLayer streams a synthetic gzip layer into path (never whole in memory): 400 files of
// 160 KiB, three quarters random so it compresses like real binaries (~50 MB blob), plus
// 5000 small files in 100 directories for the per-entry cost.
func genLayer(b *testing.B, path string) (want Want, rawSize int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	blobH, diffH := sha256.New(), sha256.New()
	bw := &countWriter{w: io.MultiWriter(f, blobH)}
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	cw := &countWriter{w: io.MultiWriter(zw, diffH)}
	tw := tar.NewWriter(cw)
	rng := rand.NewChaCha8([32]byte{1})
	big := make([]byte, 160<<10)
	small := make([]byte, 2048)
	add := func(name string, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: testTime}); err != nil {
			b.Fatal(err)
		}
		tw.Write(body)
	}
	for i := range 400 {
		rng.Read(big[:len(big)*3/4])
		add(fmt.Sprintf("usr/lib/big%03d.so", i), big)
	}
	for i := range 5000 {
		rng.Read(small[:1024])
		add(fmt.Sprintf("usr/share/d%02d/f%04d", i%100, i), small)
	}
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return Want{Digest: digestString(blobH), DiffID: digestString(diffH), Size: bw.n}, cw.n
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func digestString(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

func BenchmarkExtractGzip50MB(b *testing.B) {
	tmp := b.TempDir()
	blob := filepath.Join(tmp, "layer.tar.gz")
	want, rawSize := genLayer(b, blob)
	if fi, err := os.Stat(blob); err == nil {
		b.Logf("blob %d MB, tar %d MB", fi.Size()>>20, rawSize>>20)
	}
	b.SetBytes(rawSize)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dir := filepath.Join(tmp, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := os.Open(blob)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := Extract(context.Background(), f, dir, want, Options{Whiteouts: WhiteoutOCI}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
}
