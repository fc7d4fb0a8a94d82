package layer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// zstdRawFrame is a zstd frame holding data in raw blocks, with the frame header descriptor
// fhd and the header fields after it (window descriptor, content size) as given: any window
// can be declared whatever the data.
func zstdRawFrame(fhd byte, fields []byte, data []byte) []byte {
	out := append(bytes.Clone(magicZstd), fhd)
	out = append(out, fields...)
	const maxBlock = 128 << 10
	for {
		n := min(len(data), maxBlock)
		bh := uint32(n) << 3 // raw block
		if n == len(data) {
			bh |= 1 // last
		}
		out = append(out, byte(bh), byte(bh>>8), byte(bh>>16))
		out = append(out, data[:n]...)
		if data = data[n:]; len(data) == 0 {
			return out
		}
	}
}

// windowDescriptor declares a window of 1<<log bytes.
func windowDescriptor(log int) []byte { return []byte{byte(log-10) << 3} }

// singleSegment declares the window by the frame's content size (8-byte field).
func singleSegment(size uint64) (byte, []byte) {
	return 0x20 | 3<<6, binary.LittleEndian.AppendUint64(nil, size)
}

func TestZstdWindowLimit(t *testing.T) {
	raw := mkTar(t, file("a", strings.Repeat("payload ", 1000), 0o644), file("b", "b", 0o644))
	half := len(raw) / 2
	ssFHD, ssFields := singleSegment(1 << 30)
	cases := []struct {
		name    string
		blob    []byte
		opts    Options
		wantErr []string // nil: Extract succeeds
	}{
		{name: "8 MiB window", blob: zstdRawFrame(0, windowDescriptor(23), raw)},
		{name: "at the default limit", blob: zstdRawFrame(0, windowDescriptor(27), raw)},
		{name: "512 MiB window", blob: zstdRawFrame(0, windowDescriptor(29), raw),
			wantErr: []string{"a zstd frame declares a window of 512 MiB, more than the limit of 128 MiB", "Options.MaxZstdWindowBytes"}},
		{name: "512 MiB window in the second frame",
			blob:    append(zstdRawFrame(0, windowDescriptor(23), raw[:half]), zstdRawFrame(0, windowDescriptor(29), raw[half:])...),
			wantErr: []string{"declares a window of 512 MiB, more than the limit of 128 MiB"}},
		{name: "single segment of 1 GiB", blob: zstdRawFrame(ssFHD, ssFields, raw),
			wantErr: []string{"declares a window of 1024 MiB, more than the limit of 128 MiB"}},
		{name: "lower limit", blob: zstdRawFrame(0, windowDescriptor(23), raw), opts: Options{MaxZstdWindowBytes: 1 << 20},
			wantErr: []string{"declares a window of 8 MiB, more than the limit of 1 MiB"}},
		{name: "raised limit", blob: zstdRawFrame(0, windowDescriptor(29), raw), opts: Options{MaxZstdWindowBytes: 1 << 30}},
		{name: "no limit", blob: zstdRawFrame(0, windowDescriptor(29), raw), opts: Options{MaxZstdWindowBytes: -1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, dir := layerDir(t)
			want := Want{Digest: sha(c.blob), DiffID: sha(raw), Size: int64(len(c.blob))}
			c.opts.Whiteouts = WhiteoutOCI
			m, err := Extract(context.Background(), bytes.NewReader(c.blob), dir, want, c.opts)
			if c.wantErr == nil {
				if err != nil {
					t.Fatalf("Extract: %v", err)
				}
				if m.Compression != "zstd" || readFile(t, dir+"/b") != "b" {
					t.Errorf("compression %q, tree %v", m.Compression, tree(t, dir))
				}
				return
			}
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("err = %v, want ErrLimit", err)
			}
			for _, s := range append(c.wantErr, "layer "+want.Digest) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestTailReader(t *testing.T) {
	data := []byte("0123456789abcdefghijklmnopqrstuvwxyz")
	for _, chunk := range []int{1, 3, 7, 18, 40} {
		tr := &tailReader{r: bytes.NewReader(data)}
		buf := make([]byte, chunk)
		for {
			if _, err := tr.Read(buf); err != nil {
				break
			}
		}
		if got, want := string(tr.tail[:tr.n]), string(data[len(data)-frameHeaderMax:]); got != want {
			t.Errorf("chunks of %d: tail %q, want %q", chunk, got, want)
		}
	}
}
