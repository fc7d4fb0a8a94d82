package lazy

import (
	"bytes"
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"flatbed.dev/pkg/imagegen"
)

// benchConvert converts one gzip layer of make bench's big image (its first: 50 MiB in 1,440
// files and directories, a tenth of the files random bytes, the others text) to format, the
// whole of ConvertLayer: reading and checking the source, the conversion, the digest of the
// result and the format's check. cpu-s/op (user and system time of the process) tells the
// work done better than ns/op on a shared machine.
func benchConvert(b *testing.B, format string, o Options) {
	raw, err := imagegen.FilesTar(11000, "opt/bench/layer0", 250<<20/5, 7200/5)
	if err != nil {
		b.Fatal(err)
	}
	var src bytes.Buffer
	zw := gzip.NewWriter(&src)
	if _, err := zw.Write(raw); err != nil {
		b.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	c, err := New(format, o)
	if err != nil {
		b.Fatal(err)
	}
	want := Source{Digest: sha(src.Bytes()), DiffID: sha(raw)}
	dir := b.TempDir()
	b.SetBytes(int64(len(raw)))
	var out int64
	cpu0 := cpuTime(b)
	for b.Loop() {
		l, err := ConvertLayer(context.Background(), bytes.NewReader(src.Bytes()), want, c, false, dir)
		if err != nil {
			b.Fatal(err)
		}
		out = l.Size
		if err := l.Remove(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(out)/float64(len(raw)), "ratio")
}

// cpuTime is the user and system time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkConvertEstargz: the default level, gzip's fastest and its best; the one-pass way
// (a layer this size) and the library's parallel build.
func BenchmarkConvertEstargz(b *testing.B) {
	for _, level := range []int{0, 1, 5, 9} {
		b.Run(fmt.Sprintf("level=%d", level), func(b *testing.B) { benchConvert(b, Estargz, Options{Level: level}) })
	}
	b.Run("level=0/parallel", func(b *testing.B) {
		defer func(n int64) { estargzSerialBelow = n }(estargzSerialBelow)
		estargzSerialBelow = 0
		benchConvert(b, Estargz, Options{})
	})
}

func BenchmarkConvertZstdChunked(b *testing.B) {
	for _, level := range []int{0, 1} {
		b.Run(fmt.Sprintf("level=%d", level), func(b *testing.B) { benchConvert(b, ZstdChunked, Options{Level: level}) })
	}
}
