package layer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	n, zn := int64(len(blob)), int64(len(zblob))
	padded := append(bytes.Clone(blob), compress(t, "gzip", nil)...) // a valid empty gzip member more

	cases := []struct {
		name     string
		blob     []byte
		want     Want
		sentinel error    // the one of ErrDigestMismatch, ErrMalformed, ErrLimit, ErrUnsafe wrapped; nil: none
		contains []string // in the message
	}{
		{name: "compressed digest", blob: blob, want: Want{Digest: zeros, DiffID: sha(raw), Size: n}, sentinel: ErrDigestMismatch,
			contains: []string{"layer " + zeros, "compressed digest", "expected " + zeros, "got " + sha(blob)}},
		// The blob is what was published, its tar stream is not what the config says: the
		// image is inconsistent, and a retry would download the same bytes again.
		{name: "diff_id", blob: blob, want: Want{Digest: sha(blob), DiffID: zeros, Size: n}, sentinel: ErrMalformed,
			contains: []string{"layer " + sha(blob), "diff_id mismatch", "config expects " + zeros, "tar stream is " + sha(raw), "a retry cannot help"}},
		{name: "corrupt download", blob: corrupt, want: Want{Digest: sha(blob), DiffID: sha(raw), MediaType: mt, Size: n}, sentinel: ErrDigestMismatch,
			contains: []string{"compressed digest", "got " + sha(corrupt), mt}},
		{name: "corrupt zstd", blob: zcorrupt, want: Want{Digest: sha(zblob), DiffID: sha(raw), Size: zn}, sentinel: ErrDigestMismatch,
			contains: []string{"compressed digest", "got " + sha(zcorrupt)}},
		// The descriptor's size is a promise like the digest: the blob is read to exactly
		// that size. Shorter and intact means the manifest is wrong, whatever is retried.
		{name: "shorter than its descriptor", blob: blob, want: Want{Digest: sha(blob), Size: n + 1}, sentinel: ErrMalformed,
			contains: []string{"layer " + sha(blob), fmt.Sprintf("matches its digest but is %d bytes, while the manifest's descriptor gives %d", n, n+1)}},
		// Longer stops at the first byte too many (an endless stream cannot run on); it
		// cannot be told from a bad download without reading on, so it stays retryable.
		{name: "longer than its descriptor", blob: padded, want: Want{Digest: sha(padded), Size: n},
			contains: []string{"layer " + sha(padded), fmt.Sprintf("the blob is longer than the %d bytes its descriptor gives", n)}},
		{name: "one byte short of its end", blob: blob, want: Want{Digest: sha(blob), Size: n - 1},
			contains: []string{fmt.Sprintf("the blob is longer than the %d bytes its descriptor gives", n-1)}},
		{name: "truncated", blob: blob[:len(blob)-10], want: Want{Digest: sha(blob), MediaType: mt, Size: n}, sentinel: ErrDigestMismatch,
			contains: []string{mt, "compressed digest"}},
		{name: "truncated at a member end", blob: blob, want: Want{Digest: sha(padded), Size: int64(len(padded))}, sentinel: ErrDigestMismatch,
			contains: []string{"compressed digest", "got " + sha(blob), fmt.Sprintf("ended after %d of the %d bytes", n, len(padded))}},
		{name: "no digest", blob: blob, want: Want{}, contains: []string{"no layer digest"}},
		{name: "malformed digest", blob: blob, want: Want{Digest: "sha256:abc"}, contains: []string{"malformed digest"}},
		{name: "bzip2", blob: []byte("BZh91AY&SY..."), want: Want{Digest: zeros, MediaType: "application/x-bzip2-ish", Size: 13},
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
	_, err := Extract(ctx, bytes.NewReader(blob), dir, Want{Digest: sha(blob), Size: int64(len(blob))}, Options{Whiteouts: WhiteoutOCI})
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
		Want{Digest: sha(raw), Size: int64(len(raw))}, Options{Whiteouts: WhiteoutOCI})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

// A descriptor without a size (0, what a manifest lacking the field decodes to) would leave
// the blob unbounded: it is refused before a byte is read or the directory is touched.
func TestDescriptorSizeRequired(t *testing.T) {
	for _, size := range []int64{0, -1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			_, dir := layerDir(t)
			digest := "sha256:" + strings.Repeat("ab", 32)
			r := &countingReader{r: strings.NewReader("anything")}
			_, err := Extract(context.Background(), r, dir, Want{Digest: digest, Size: size}, Options{})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			for _, s := range []string{"layer " + digest, fmt.Sprintf("descriptor gives size %d", size), "the manifest is wrong"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if r.reads != 0 {
				t.Errorf("the blob was read %d times", r.reads)
			}
			if got := tree(t, dir); len(got) != 0 {
				t.Errorf("layer dir holds %v", got)
			}
		})
	}
}

type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}
