package layer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"
)

// Scan passes the tar on byte for byte and describes it as Extract does; a bad layer ends
// the stream with an error, never a clean end.
func TestScan(t *testing.T) {
	raw := mkTar(t, dirEnt("etc/", 0o755), file("etc/a", "a", 0o644), file("usr/lib/x", "x", 0o644), linkEnt("usr/lib/y", "usr/lib/x"),
		linkEnt("usr/z", "bin/old"), file("usr/.wh.gone", "", 0o644))
	gz := compress(t, "gzip", raw)
	want := Want{Digest: sha(gz), DiffID: sha(raw), Size: int64(len(gz))}
	tr, done := Scan(context.Background(), bytes.NewReader(gz), want, Options{})
	got, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, raw) {
		t.Error("the tar passed on is not the layer's uncompressed tar")
	}
	m, err := done()
	if err != nil {
		t.Fatal(err)
	}
	if m.Entries != 6 || m.Compression != "gzip" || m.Whiteouts != WhiteoutOCI || m.UncompressedSize != int64(len(raw)) || m.Size != int64(len(gz)) {
		t.Errorf("meta %+v", m)
	}
	if !slices.Equal(m.Links, []Link{{Path: "usr/z", Target: "bin/old"}}) {
		t.Errorf("links %v, want only the one to an earlier layer", m.Links)
	}
	if !slices.Equal(m.ImplicitDirs, []string{"usr", "usr/lib"}) {
		t.Errorf("implicit dirs %v", m.ImplicitDirs)
	}

	for name, tc := range map[string]struct {
		blob []byte
		want Want
		is   error
	}{
		"changed blob":  {append(slices.Clone(gz[:len(gz)-1]), gz[len(gz)-1]^1), want, nil},
		"other diff_id": {gz, Want{Digest: sha(gz), DiffID: sha([]byte("x")), Size: int64(len(gz))}, ErrMalformed},
		"dot-dot name":  {compress(t, "gzip", mkTar(t, file("../etc/passwd", "x", 0o644))), Want{}, ErrUnsafe},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.want.Digest == "" {
				tc.want = Want{Digest: sha(tc.blob), Size: int64(len(tc.blob))}
			}
			tr, done := Scan(context.Background(), bytes.NewReader(tc.blob), tc.want, Options{})
			got, rerr := io.ReadAll(tr)
			_, err := done()
			if rerr == nil || err == nil {
				t.Fatalf("read error %v, scan error %v: a bad layer ended cleanly", rerr, err)
			}
			if bytes.Contains(got, make([]byte, 1024)) {
				t.Error("the tar's end-of-archive blocks were handed on before the layer failed its checks")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
		})
	}
}
