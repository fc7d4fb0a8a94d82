package layer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestVerification(t *testing.T) {
	raw := mkTar(t, file("a", strings.Repeat("payload ", 1000), 0o644), file("b", "b", 0o644))
	blob := compress(t, "gzip", raw)
	zeros := "sha256:" + strings.Repeat("0", 64)
	corrupt := bytes.Clone(blob)
	corrupt[len(corrupt)/2] ^= 0xff
	zblob := compress(t, "zstd", raw)
	zcorrupt := bytes.Clone(zblob)
	zcorrupt[len(zcorrupt)/2] ^= 0xff
	const mt = "application/vnd.oci.image.layer.v1.tar+gzip"

	cases := []struct {
		name     string
		blob     []byte
		want     Want
		sentinel error    // the one of ErrDigestMismatch, ErrMalformed, ErrLimit, ErrUnsafe wrapped; nil: none
		contains []string // in the message
	}{
		{name: "compressed digest", blob: blob, want: Want{Digest: zeros, DiffID: sha(raw)}, sentinel: ErrDigestMismatch,
			contains: []string{"layer " + zeros, "compressed digest", "expected " + zeros, "got " + sha(blob)}},
		// The blob is what was published, its tar stream is not what the config says: the
		// image is inconsistent, and a retry would download the same bytes again.
		{name: "diff_id", blob: blob, want: Want{Digest: sha(blob), DiffID: zeros}, sentinel: ErrMalformed,
			contains: []string{"layer " + sha(blob), "diff_id mismatch", "config expects " + zeros, "tar stream is " + sha(raw), "a retry cannot help"}},
		{name: "corrupt download", blob: corrupt, want: Want{Digest: sha(blob), DiffID: sha(raw), MediaType: mt}, sentinel: ErrDigestMismatch,
			contains: []string{"compressed digest", "got " + sha(corrupt), mt}},
		{name: "corrupt zstd", blob: zcorrupt, want: Want{Digest: sha(zblob), DiffID: sha(raw)}, sentinel: ErrDigestMismatch,
			contains: []string{"compressed digest", "got " + sha(zcorrupt)}},
		{name: "size", blob: blob, want: Want{Digest: sha(blob), Size: int64(len(blob)) + 1},
			contains: []string{"size mismatch"}},
		{name: "truncated", blob: blob[:len(blob)-10], want: Want{Digest: sha(blob), MediaType: mt}, sentinel: ErrDigestMismatch,
			contains: []string{mt, "compressed digest"}},
		{name: "no digest", blob: blob, want: Want{}, contains: []string{"no layer digest"}},
		{name: "malformed digest", blob: blob, want: Want{Digest: "sha256:abc"}, contains: []string{"malformed digest"}},
		{name: "bzip2", blob: []byte("BZh91AY&SY..."), want: Want{Digest: zeros, MediaType: "application/x-bzip2-ish"},
			contains: []string{"bzip2", "application/x-bzip2-ish"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, dir := layerDir(t)
			_, err := Extract(context.Background(), bytes.NewReader(c.blob), dir, c.want, Options{Whiteouts: WhiteoutOCI})
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range []error{ErrDigestMismatch, ErrMalformed, ErrLimit, ErrUnsafe} {
				if got := errors.Is(err, s); got != (s == c.sentinel) {
					t.Errorf("errors.Is(%v) = %v: %v", s, got, err)
				}
			}
			for _, s := range c.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestCancel(t *testing.T) {
	raw := mkTar(t, file("a", "x", 0o644))
	blob := compress(t, "zstd", raw)
	_, dir := layerDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Extract(ctx, bytes.NewReader(blob), dir, Want{Digest: sha(blob)}, Options{Whiteouts: WhiteoutOCI})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// cancelAfter cancels once n bytes have been read: cancellation inside one big file.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestCancelMidFile(t *testing.T) {
	raw := mkTar(t, file("big", strings.Repeat("0123456789abcdef", 1<<16), 0o644))
	_, dir := layerDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Extract(ctx, &cancelAfter{r: bytes.NewReader(raw), n: 100 << 10, cancel: cancel}, dir,
		Want{Digest: sha(raw)}, Options{Whiteouts: WhiteoutOCI})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
