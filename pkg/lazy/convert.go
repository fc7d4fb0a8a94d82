package lazy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// DefaultConcurrency is how many platforms of an index are converted at once, as overlaybd's
// convertor's --concurrency-limit, and how many layers.
const DefaultConcurrency = 4

// Request is one image to convert.
type Request struct {
	Source name.Reference // the original, best pinned to its digest
	// Target is where the converted image goes: its tag, or its repository alone when Target
	// is a digest reference (the converted image is then pushed by digest only).
	Target    name.Reference
	Format    string
	Converter Converter
	// OCI writes OCI media types; Referrer pushes the converted manifests (and index) with a
	// subject pointing at the originals and the format's artifact type (OCI implied).
	OCI, Referrer bool
	// NoUpload converts without pushing anything (Result.Manifest says what would be pushed);
	// the dedup store is then neither read nor written.
	NoUpload bool
	// Concurrency bounds the platforms of an index converted at once, and the layers
	// converted at once over all of them (0: DefaultConcurrency).
	Concurrency int
	TempDir     string // for the spooled and converted blobs ("" = the system's)
	Dedup       Dedup  // nil: every layer is converted
	Remote      []remote.Option
	Log         *slog.Logger
	// Variant distinguishes conversions of one format with other settings (prioritised
	// files) in the dedup keys.
	Variant string
}

// Result says what a conversion made.
type Result struct {
	Digest    v1.Hash // of the converted manifest or index
	Size      int64
	MediaType types.MediaType
	Manifest  []byte     // the converted manifest or index
	Platforms []Platform // the converted manifests of an index
	Cached    bool       // the dedup store knew the whole image: nothing was converted
	// Layers counts the converted image's layers (every platform's), Converted those converted
	// in this run, Reused those taken from the dedup store; Bytes are the converted bytes
	// written and SourceBytes the source bytes read.
	Layers, Converted, Reused int
	Bytes, SourceBytes        int64
}

// Platform is one converted manifest of an index.
type Platform struct {
	Platform string // os/arch[/variant]
	Digest   v1.Hash
	Manifest []byte
}

// Dedup remembers what layers and images were converted to, so none is converted twice.
// Implementations are shared by every replica (JetStream KV, SQL).
type Dedup interface {
	Layer(ctx context.Context, key LayerKey) (Blob, bool, error)
	PutLayer(ctx context.Context, key LayerKey, b Blob) error
	Manifest(ctx context.Context, key ManifestKey) (Blob, bool, error)
	PutManifest(ctx context.Context, key ManifestKey, b Blob) error
}

// LayerKey names a converted layer: the source layer's chain ID (its content and every layer
// below it) and the format.
type LayerKey struct {
	ChainID v1.Hash
	Format  string // with the variant, e.g. "estargz" or "estargz-<hash of the prioritised files>"
	// Target is the repository the layer is wanted in (registry/repository): a store keyed
	// by repository (overlaybd's overlaybd_layers table) prefers a record of that one, and
	// records a layer per repository it was pushed or mounted to.
	Target string
}

// ManifestKey names a converted image: the source manifest or index and how it was converted.
type ManifestKey struct {
	Source    v1.Hash
	Format    string
	MediaType types.MediaType // of the converted manifest or index: OCI or Docker, referrer or not
	Referrer  bool
	Target    string // the repository it was converted into (registry/repository)
}

// Blob is what a dedup entry holds: the converted blob or manifest and where it was pushed.
type Blob struct {
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	DiffID      string            `json:"diff_id,omitempty"`
	MediaType   string            `json:"media_type,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Repository  string            `json:"repository"` // registry/repository it was pushed to
}

// ChainIDs returns the chain ID of each layer from the diff IDs (OCI image spec: ChainID(L0)
// = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))).
func ChainIDs(diffIDs []v1.Hash) []v1.Hash {
	out := make([]v1.Hash, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		s := sha256.Sum256([]byte(out[i-1].String() + " " + d.String()))
		out[i] = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
	}
	return out
}

// converter is the state of one Convert call.
type converter struct {
	Request
	repo  name.Repository
	slots *semaphore.Weighted // layers converted at once
	mu    sync.Mutex
	res   Result
}

// Convert converts the image or index req.Source names and pushes it to req.Target: every
// layer converted (or taken from the dedup store when it is still in the target repository,
// mounted there when it is in another repository of the target's registry), the configs
// rewritten with the new diff IDs, each platform of an index converted with at most
// req.Concurrency at once, and at most req.Concurrency layers at once over all platforms. An
// image the dedup store knows as converted and that is still in the target is only tagged.
func Convert(ctx context.Context, req Request) (*Result, error) {
	c := &converter{Request: req, repo: req.Target.Context()}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	c.slots = semaphore.NewWeighted(int64(c.Concurrency))
	c.Remote = append(c.Remote[:len(c.Remote):len(c.Remote)], remote.WithContext(ctx))
	desc, err := remote.Get(req.Source, c.Remote...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", req.Source, err)
	}
	if done, err := c.cached(ctx, desc); done || err != nil {
		return &c.res, err
	}
	var raw []byte
	var mt types.MediaType
	if desc.MediaType.IsIndex() {
		raw, mt, err = c.index(ctx, desc)
	} else {
		var d v1.Descriptor
		d, raw, err = c.image(ctx, desc.Descriptor, req.Source)
		mt = d.MediaType
	}
	if err != nil {
		return nil, err
	}
	h, size, _ := v1.SHA256(bytesReader(raw))
	c.res.Digest, c.res.Size, c.res.MediaType, c.res.Manifest = h, size, mt, raw
	if req.NoUpload {
		return &c.res, nil
	}
	if err := c.put(req.Target, raw, mt); err != nil {
		return nil, err
	}
	if c.Dedup != nil {
		if err := c.Dedup.PutManifest(ctx, c.manifestKey(desc.Digest, mt), Blob{Digest: h.String(), Size: size, MediaType: string(mt), Repository: c.repo.Name()}); err != nil {
			c.Log.Warn("the dedup store did not record the converted image", "image", req.Source.String(), "err", err)
		}
	}
	return &c.res, nil
}

// manifestKey is the dedup key of the conversion of the source manifest or index src.
func (c *converter) manifestKey(src v1.Hash, mt types.MediaType) ManifestKey {
	return ManifestKey{Source: src, Format: c.format(), MediaType: mt, Referrer: c.Referrer, Target: c.repo.Name()}
}

func (c *converter) format() string {
	if c.Variant != "" {
		return c.Format + "-" + c.Variant
	}
	return c.Format
}

// oci says whether the converted image is written with OCI media types.
func (c *converter) oci() bool { return c.OCI || c.Referrer || c.Converter.NeedsOCI() }

// cached tags the converted image the dedup store knows for desc, when it is still in the
// target repository.
func (c *converter) cached(ctx context.Context, desc *remote.Descriptor) (bool, error) {
	if c.Dedup == nil || c.NoUpload {
		return false, nil
	}
	mt := types.DockerManifestSchema2
	if desc.MediaType.IsIndex() {
		mt = types.DockerManifestList
	}
	if c.oci() {
		mt = types.OCIManifestSchema1
		if desc.MediaType.IsIndex() {
			mt = types.OCIImageIndex
		}
	}
	hit, ok, err := c.Dedup.Manifest(ctx, c.manifestKey(desc.Digest, mt))
	if err != nil {
		c.Log.Warn("the dedup store could not be read; converting", "image", c.Source.String(), "err", err)
		return false, nil
	}
	if !ok || hit.Repository != c.repo.Name() {
		return false, nil
	}
	got, err := remote.Get(c.repo.Digest(hit.Digest), c.Remote...)
	if err == nil {
		err = c.complete(got)
	}
	if err != nil {
		// Deleted from the target since, or a blob of it: convert it again rather than
		// point at nothing.
		c.Log.Info("the converted image recorded is not whole in the target; converting again", "image", c.Source.String(), "digest", hit.Digest, "err", err)
		return false, nil
	}
	if _, isTag := c.Target.(name.Tag); isTag {
		if err := remote.Tag(c.Target.(name.Tag), got, c.Remote...); err != nil {
			return false, fmt.Errorf("tagging %s: %w", c.Target, err)
		}
	}
	c.res = Result{Digest: got.Digest, Size: got.Size, MediaType: got.MediaType, Manifest: got.Manifest, Cached: true}
	return true, nil
}

// complete checks that the target still holds every blob of a converted image or index
// (a HEAD each), so a cached image never names a blob deleted since.
func (c *converter) complete(desc *remote.Descriptor) error {
	var images []v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return err
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return err
		}
		for _, m := range im.Manifests {
			img, err := idx.Image(m.Digest)
			if err != nil {
				return err
			}
			images = append(images, img)
		}
	} else {
		img, err := desc.Image()
		if err != nil {
			return err
		}
		images = append(images, img)
	}
	for _, img := range images {
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			l, err := remote.Layer(c.repo.Digest(d.Digest.String()), c.Remote...)
			if err != nil {
				return err
			}
			if ok, err := partial.Exists(l); err != nil || !ok {
				return fmt.Errorf("blob %s is gone (%v)", d.Digest, err)
			}
		}
	}
	return nil
}

// index converts every platform of an index, at most Concurrency at once, and returns the
// converted index.
func (c *converter) index(ctx context.Context, desc *remote.Descriptor) ([]byte, types.MediaType, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, "", fmt.Errorf("reading the index %s: %w", c.Source, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", fmt.Errorf("reading the index %s: %w", c.Source, err)
	}
	src := c.Source.Context()
	out := make([]v1.Descriptor, len(im.Manifests))
	plats := make([]Platform, len(im.Manifests))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.Concurrency)
	for i, m := range im.Manifests {
		if !m.MediaType.IsImage() || (m.Platform != nil && m.Platform.OS == "unknown") {
			// Attestations and other artifacts are not images to convert: dropped.
			continue
		}
		g.Go(func() error {
			d, raw, err := c.image(gctx, m, src.Digest(m.Digest.String()))
			if err != nil {
				return err
			}
			d.Platform, d.Annotations = m.Platform, m.Annotations
			out[i] = d
			p := ""
			if m.Platform != nil {
				p = m.Platform.String()
			}
			plats[i] = Platform{Platform: p, Digest: d.Digest, Manifest: raw}
			if !c.NoUpload {
				return c.put(c.repo.Digest(d.Digest.String()), raw, d.MediaType)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, "", err
	}
	var manifests []v1.Descriptor
	for i, d := range out {
		if d.Digest.Hex != "" {
			manifests = append(manifests, d)
			c.res.Platforms = append(c.res.Platforms, plats[i])
		}
	}
	if len(manifests) == 0 {
		return nil, "", fmt.Errorf("the index %s lists no image to convert", c.Source)
	}
	shape := Shape{OCI: c.oci()}
	if c.Referrer {
		shape.Subject, shape.ArtifactType = &desc.Descriptor, c.Converter.ArtifactType()
	}
	return Index(im, manifests, shape)
}

// image converts one image manifest and returns the descriptor and bytes of the converted one
// (pushed by the caller), its config and layers pushed.
func (c *converter) image(ctx context.Context, desc v1.Descriptor, ref name.Reference) (v1.Descriptor, []byte, error) {
	img, err := remote.Image(ref, append(c.Remote[:len(c.Remote):len(c.Remote)], remote.WithContext(ctx))...)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading the manifest of %s: %w", ref, err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading the config of %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading the config of %s: %w", ref, err)
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return v1.Descriptor{}, nil, fmt.Errorf("%s: its config names %d diff IDs for %d layers; the image is inconsistent", ref, len(cf.RootFS.DiffIDs), len(m.Layers))
	}
	chains := ChainIDs(cf.RootFS.DiffIDs)
	layers := make([]v1.Descriptor, len(m.Layers))
	diffIDs := make([]v1.Hash, len(m.Layers))
	g, gctx := errgroup.WithContext(ctx)
	for i, ld := range m.Layers {
		l, err := img.LayerByDigest(ld.Digest)
		if err != nil {
			return v1.Descriptor{}, nil, fmt.Errorf("%s layer %s: %w", ref, ld.Digest, err)
		}
		g.Go(func() error {
			if err := c.slots.Acquire(gctx, 1); err != nil {
				return err
			}
			defer c.slots.Release(1)
			var err error
			if layers[i], diffIDs[i], err = c.layer(gctx, l, ld, cf.RootFS.DiffIDs[i], chains[i]); err != nil {
				return fmt.Errorf("%s layer %s: %w", ref, ld.Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return v1.Descriptor{}, nil, err
	}
	cfg, err := RewriteConfig(rawCfg, diffIDs)
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("%s: %w", ref, err)
	}
	shape := Shape{OCI: c.oci()}
	if c.Referrer {
		shape.Subject, shape.ArtifactType = &v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, c.Converter.ArtifactType()
	}
	cfgLayer := static.NewLayer(cfg, shape.ConfigMediaType())
	cfgDigest, _ := cfgLayer.Digest()
	if !c.NoUpload {
		if err := remote.WriteLayer(c.repo, cfgLayer, c.Remote...); err != nil {
			return v1.Descriptor{}, nil, fmt.Errorf("pushing the config of %s to %s: %w", ref, c.repo, err)
		}
	}
	raw, mt, err := Manifest(m, v1.Descriptor{Digest: cfgDigest, Size: int64(len(cfg))}, layers, shape)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	h, size, _ := v1.SHA256(bytesReader(raw))
	return v1.Descriptor{MediaType: mt, Digest: h, Size: size}, raw, nil
}

// layer converts one layer, or reuses its conversion, and returns its descriptor and diff ID.
func (c *converter) layer(ctx context.Context, l v1.Layer, src v1.Descriptor, diffID, chain v1.Hash) (v1.Descriptor, v1.Hash, error) {
	key := LayerKey{ChainID: chain, Format: c.format(), Target: c.repo.Name()}
	mt := LayerMediaType(c.Converter.Compression(), c.oci())
	if d, id, ok := c.reuse(ctx, key, mt); ok {
		c.count(func(r *Result) { r.Layers++; r.Reused++ })
		return d, id, nil
	}
	rc, err := l.Compressed() // verified against its digest as it is read
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	defer rc.Close()
	cr := &countReader{r: rc}
	out, err := ConvertLayer(ctx, cr, Source{Digest: src.Digest, DiffID: diffID, Verified: true}, c.Converter, c.oci(), c.TempDir)
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, err
	}
	defer func() { _ = out.Remove() }()
	if !c.NoUpload {
		if err := remote.WriteLayer(c.repo, &fileLayer{out}, c.Remote...); err != nil {
			return v1.Descriptor{}, v1.Hash{}, fmt.Errorf("pushing the converted layer %s to %s: %w", out.Digest, c.repo, err)
		}
		if c.Dedup != nil {
			b := Blob{Digest: out.Digest.String(), Size: out.Size, DiffID: out.DiffID.String(), Annotations: out.Annotations, Repository: c.repo.Name()}
			if err := c.Dedup.PutLayer(ctx, key, b); err != nil {
				c.Log.Warn("the dedup store did not record a converted layer", "layer", src.Digest.String(), "err", err)
			}
		}
	}
	c.count(func(r *Result) { r.Layers++; r.Converted++; r.Bytes += out.Size; r.SourceBytes += cr.n })
	return out.Descriptor(), out.DiffID, nil
}

// reuse looks the layer up in the dedup store and makes sure the blob is in the target
// repository: there already, or mounted from the repository it was pushed to on the same
// registry. A blob that is gone is converted again, never referenced dangling.
func (c *converter) reuse(ctx context.Context, key LayerKey, mt types.MediaType) (v1.Descriptor, v1.Hash, bool) {
	if c.Dedup == nil || c.NoUpload {
		return v1.Descriptor{}, v1.Hash{}, false
	}
	hit, ok, err := c.Dedup.Layer(ctx, key)
	if err != nil {
		c.Log.Warn("the dedup store could not be read; converting", "chain_id", key.ChainID.String(), "err", err)
		return v1.Descriptor{}, v1.Hash{}, false
	}
	if !ok {
		return v1.Descriptor{}, v1.Hash{}, false
	}
	digest, err1 := v1.NewHash(hit.Digest)
	diffID, err2 := v1.NewHash(hit.DiffID)
	if err1 != nil || err2 != nil {
		return v1.Descriptor{}, v1.Hash{}, false
	}
	d := v1.Descriptor{MediaType: mt, Digest: digest, Size: hit.Size, Annotations: hit.Annotations}
	ro := append(c.Remote[:len(c.Remote):len(c.Remote)], remote.WithContext(ctx))
	here, err := remote.Layer(c.repo.Digest(hit.Digest), ro...)
	if err == nil {
		if ok, err := partial.Exists(here); err == nil && ok {
			return d, diffID, true
		}
	}
	from, err := name.NewRepository(hit.Repository, name.WithDefaultRegistry(""))
	if err != nil || hit.Repository == c.repo.Name() || from.RegistryStr() != c.repo.RegistryStr() {
		return v1.Descriptor{}, v1.Hash{}, false
	}
	if c.repo.Scheme() == "http" {
		from, _ = name.NewRepository(hit.Repository, name.Insecure)
	}
	there, err := remote.Layer(from.Digest(hit.Digest), ro...)
	if err != nil {
		return v1.Descriptor{}, v1.Hash{}, false
	}
	if ok, err := partial.Exists(there); err != nil || !ok {
		return v1.Descriptor{}, v1.Hash{}, false
	}
	if err := remote.WriteLayer(c.repo, there, ro...); err != nil {
		c.Log.Info("could not mount a converted layer; converting it again", "digest", hit.Digest, "from", hit.Repository, "err", err)
		return v1.Descriptor{}, v1.Hash{}, false
	}
	hit.Repository = c.repo.Name()
	if err := c.Dedup.PutLayer(ctx, key, hit); err != nil {
		c.Log.Warn("the dedup store did not record a mounted layer", "digest", hit.Digest, "err", err)
	}
	return d, diffID, true
}

// put pushes a manifest or index under ref.
func (c *converter) put(ref name.Reference, raw []byte, mt types.MediaType) error {
	if err := remote.Put(ref, rawManifest{raw, mt}, c.Remote...); err != nil {
		return fmt.Errorf("pushing the converted manifest to %s: %w", ref, err)
	}
	return nil
}

func (c *converter) count(f func(*Result)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.res)
}

// rawManifest is a manifest or index to push as it is.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// fileLayer pushes a converted blob from its temporary file.
type fileLayer struct{ l *Layer }

func (f *fileLayer) Digest() (v1.Hash, error)            { return f.l.Digest, nil }
func (f *fileLayer) DiffID() (v1.Hash, error)            { return f.l.DiffID, nil }
func (f *fileLayer) Size() (int64, error)                { return f.l.Size, nil }
func (f *fileLayer) MediaType() (types.MediaType, error) { return f.l.MediaType, nil }
func (f *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(f.l.Path) }
func (f *fileLayer) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("a converted layer is pushed compressed only")
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
