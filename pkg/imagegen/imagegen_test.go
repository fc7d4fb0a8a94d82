package imagegen

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/compress/zstd"
)

func all() []Named { return append(Corpus(), Demo()...) }

func TestValidate(t *testing.T) {
	for _, n := range all() {
		// validate.Image reads every compressed layer as gzip; for zstd
		// images it can only check the structure, checkLayers does the rest.
		var opts []validate.Option
		if n.Twin != "" {
			opts = append(opts, validate.Fast)
		}
		if err := validate.Image(n.Image, opts...); err != nil {
			t.Errorf("%s: %v", n.Ref(), err)
		}
		checkLayers(t, n)
		sz, err := n.Image.Size()
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		ls, _ := n.Image.Layers()
		for _, l := range ls {
			s, _ := l.Size()
			total += s
		}
		if total+sz > 1<<20 {
			t.Errorf("%s: %d bytes, want < 1 MiB", n.Ref(), total+sz)
		}
		if len(ls) < 2 {
			t.Errorf("%s: %d layers, want several", n.Ref(), len(ls))
		}
	}
}

// checkLayers recomputes digest, size and diffID of every layer from its
// compressed bytes, with the decompressor its media type names.
func checkLayers(t *testing.T, n Named) {
	t.Helper()
	m, err := n.Image.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := n.Image.ConfigFile()
	for i, d := range m.Layers {
		l, err := n.Image.LayerByDigest(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := l.Compressed()
		blob, _ := io.ReadAll(rc)
		rc.Close()
		if h, sz, _ := v1.SHA256(bytes.NewReader(blob)); h != d.Digest || sz != d.Size {
			t.Errorf("%s layer %d: digest %s/%d, manifest says %s/%d", n.Ref(), i, h, sz, d.Digest, d.Size)
		}
		var ur io.Reader
		switch d.MediaType {
		case types.OCILayerZStd:
			zr, err := zstd.NewReader(bytes.NewReader(blob))
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			ur = zr
		default:
			gr, err := gzip.NewReader(bytes.NewReader(blob))
			if err != nil {
				t.Fatalf("%s layer %d: %v", n.Ref(), i, err)
			}
			ur = gr
		}
		h, _, err := v1.SHA256(ur)
		if err != nil {
			t.Fatalf("%s layer %d: %v", n.Ref(), i, err)
		}
		if h != cf.RootFS.DiffIDs[i] {
			t.Errorf("%s layer %d: diffID %s, config says %s", n.Ref(), i, h, cf.RootFS.DiffIDs[i])
		}
	}
}

func TestDeterministic(t *testing.T) {
	a, b := all(), all()
	seen := map[string]bool{}
	for i := range a {
		da, _ := a[i].Image.Digest()
		db, _ := b[i].Image.Digest()
		if da != db {
			t.Errorf("%s: digest %s then %s", a[i].Ref(), da, db)
		}
		if seen[a[i].Ref()] {
			t.Errorf("duplicate %s", a[i].Ref())
		}
		seen[a[i].Ref()] = true
	}
}

func TestMediaTypes(t *testing.T) {
	for _, n := range all() {
		mt, _ := n.Image.MediaType()
		m, err := n.Image.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		wantL := types.OCILayer
		switch {
		case mt == types.DockerManifestSchema2:
			wantL = types.DockerLayer
			if m.Config.MediaType != types.DockerConfigJSON {
				t.Errorf("%s: config %s", n.Ref(), m.Config.MediaType)
			}
		case mt == types.OCIManifestSchema1:
			if m.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("%s: config %s", n.Ref(), m.Config.MediaType)
			}
			if n.Twin != "" {
				wantL = types.OCILayerZStd
			}
		default:
			t.Errorf("%s: manifest media type %s", n.Ref(), mt)
		}
		for _, l := range m.Layers {
			if l.MediaType != wantL {
				t.Errorf("%s: layer %s, want %s", n.Ref(), l.MediaType, wantL)
			}
		}
		cf, _ := n.Image.ConfigFile()
		if len(cf.Config.Env) == 0 || !strings.HasPrefix(cf.Config.Env[0], "PATH=") || len(cf.Config.Cmd) == 0 {
			t.Errorf("%s: env %v cmd %v", n.Ref(), cf.Config.Env, cf.Config.Cmd)
		}
	}
	if mt, _ := Corpus()[0].Image.MediaType(); mt != types.DockerManifestSchema2 {
		t.Errorf("corpus/basic: %s", mt)
	}
}

func TestTwins(t *testing.T) {
	byName := map[string]Named{}
	c := Corpus()
	for _, n := range c {
		byName[n.Name] = n
	}
	twins := 0
	for _, n := range c {
		if n.Twin == "" {
			continue
		}
		twins++
		g, ok := byName[n.Twin]
		if !ok || g.Tag != n.Tag {
			t.Fatalf("%s: twin %q missing", n.Ref(), n.Twin)
		}
		zc, _ := n.Image.ConfigFile()
		gc, _ := g.Image.ConfigFile()
		if len(zc.RootFS.DiffIDs) != len(gc.RootFS.DiffIDs) {
			t.Fatalf("%s: layer count differs", n.Ref())
		}
		for i := range zc.RootFS.DiffIDs {
			if zc.RootFS.DiffIDs[i] != gc.RootFS.DiffIDs[i] {
				t.Errorf("%s: diffID %d differs from twin", n.Ref(), i)
			}
		}
		zl, _ := n.Image.Layers()
		gl, _ := g.Image.Layers()
		for i := range zl {
			zd, _ := zl[i].Digest()
			gd, _ := gl[i].Digest()
			if zd == gd {
				t.Errorf("%s: layer %d has the same compressed digest as the gzip twin", n.Ref(), i)
			}
		}
	}
	if twins == 0 {
		t.Fatal("no zstd twin")
	}
}

// entries lists the tar headers of every layer of img.
func entries(t *testing.T, img v1.Image) [][]*tar.Header {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]*tar.Header
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		var hs []*tar.Header
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			hs = append(hs, h)
		}
		rc.Close()
		out = append(out, hs)
	}
	return out
}

func TestTarFeatures(t *testing.T) {
	c := Corpus()
	found := map[string]tar.Format{}
	for _, n := range c {
		for _, hs := range entries(t, n.Image) {
			for _, h := range hs {
				found[h.Name] = h.Format
			}
		}
	}
	for p, f := range map[string]tar.Format{LongPath: tar.FormatPAX, UnicodePath: tar.FormatPAX, GNULongPath: tar.FormatGNU, SplitPath: tar.FormatUSTAR, LongNamePath: tar.FormatPAX, "long/link-to-long": tar.FormatPAX} {
		got, ok := found[p]
		if !ok {
			t.Errorf("%s not in corpus", p)
		} else if got != f {
			t.Errorf("%s: format %v, want %v", p, got, f)
		}
	}
	// opaque marker after its siblings in corpus/whiteouts layer 1.
	var wh Named
	for _, n := range c {
		if n.Name == WhiteoutsName {
			wh = n
		}
	}
	hs := entries(t, wh.Image)[1]
	idx := map[string]int{}
	for i, h := range hs {
		idx[h.Name] = i
	}
	if !(idx["opq-after/.wh..wh..opq"] > idx["opq-after/new"] && idx["opq-first/.wh..wh..opq"] < idx["opq-first/new1"]) {
		t.Errorf("opaque marker order wrong: %v", idx)
	}
	if !(idx["wr/after"] < idx["wr/.wh.after"] && idx["wr/.wh.before"] < idx["wr/before"]) {
		t.Errorf("whiteout/re-create order wrong")
	}
}

func TestDemoSharesBase(t *testing.T) {
	d := Demo()
	var first v1.Hash
	for i, n := range d {
		ls, _ := n.Image.Layers()
		dg, _ := ls[0].Digest()
		if i == 0 {
			first = dg
		} else if dg != first {
			t.Errorf("%s: base layer %s, want %s", n.Ref(), dg, first)
		}
	}
}

func TestPush(t *testing.T) {
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer s.Close()
	host := strings.TrimPrefix(s.URL, "http://")
	imgs := all()
	if err := Push(context.Background(), host, imgs); err != nil {
		t.Fatal(err)
	}
	for _, n := range imgs {
		ref, _ := name.ParseReference(host+"/"+n.Ref(), name.Insecure)
		got, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		gd, _ := got.Digest()
		wd, _ := n.Image.Digest()
		if gd != wd {
			t.Errorf("%s: pulled %s, pushed %s", n.Ref(), gd, wd)
		}
	}
}
