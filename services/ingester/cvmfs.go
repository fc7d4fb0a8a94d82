package ingester

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/store"
)

// publisher is the cvmfs_server publisher of the wish's repository, nil for a plain directory.
func (s *Service) publisher(cvmfsRepo string) *cvmfs.Publisher {
	if s.CVMFS == nil {
		return nil
	}
	return s.CVMFS(cvmfsRepo)
}

// stored says the layer is in the store. On CernVM-FS that is its layerfs and its
// description: an ingest is published on its own, so a layerfs whose description was aborted
// after it (a SIGTERM, a failed transaction) is ingested again.
func (s *Service) stored(st *store.Store, cvmfsRepo, digest string) bool {
	if !st.HasLayer(digest) {
		return false
	}
	if s.publisher(cvmfsRepo) == nil {
		return true
	}
	_, err := os.Stat(filepath.Join(st.LayerMeta(digest), layer.MetaFile))
	return err == nil
}

// ingestCVMFS publishes the layer through cvmfs_server: its uncompressed tar streamed into
// `ingest --catalog -t - -b .layers/xx/<d>/layerfs` as it downloads (nothing unpacked here;
// a download or digest failure kills the ingest before it publishes, and aborts), then its
// description and origin in one transaction (or one more ingest, mountless), with the
// .cvmfscatalog of .layers and .layers/xx. The layer counts as published once its
// description is: a layer whose description was lost is ingested again.
func (s *Service) ingestCVMFS(ctx context.Context, st *store.Store, p *cvmfs.Publisher, in events.LayerRequested, ref name.Digest, log *slog.Logger) (*layer.Meta, error) {
	l := in.Layer
	base, err := p.Rel(st.LayerFS(l.Digest))
	if err != nil {
		return nil, events.Permanent(err)
	}
	var meta *layer.Meta
	err = s.registry().Do(ctx, func(ro []remote.Option) error {
		blob, err := s.openLayer(ref, ro, in)
		if err != nil {
			return err
		}
		defer blob.Close()
		stream := newBlobStream(blob, l.Digest, &s.Metrics.fetched)
		if s.Progress != nil {
			stream.progress = func(n int64) { s.Progress(in, n) }
		}
		tr, done := layer.Scan(ctx, stream, layer.Want{Digest: l.Digest, DiffID: l.DiffID, MediaType: l.MediaType, Size: l.Size},
			layer.Options{Logger: log, MaxUncompressedBytes: s.MaxLayerBytes})
		ierr := p.Ingest(ctx, base, tr, true)
		tr.Close()
		m, serr := done()
		if serr != nil {
			if ctx.Err() == nil {
				if terr := stream.explain(l, in.Job.Image); terr != nil {
					return terr
				}
			}
			return fmt.Errorf("streaming layer %s of %s into %s: %w", l.Digest, in.Job.Image, p.Repo, serr)
		}
		if ierr != nil {
			return ierr
		}
		meta = m
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	if err := s.describeCVMFS(ctx, st, p, l.Digest, meta, in.Image.ConfigDigest); err != nil {
		return nil, err
	}
	log.Info("layer ingested into CernVM-FS", "repo", p.Repo, "base", base, "bytes", meta.Size, "entries", meta.Entries)
	return meta, nil
}

// describeCVMFS publishes a layer's layer.json (when meta is set) and adds config to its
// origin.json, with the nested catalogs of .layers and .layers/xx.
func (s *Service) describeCVMFS(ctx context.Context, st *store.Store, p *cvmfs.Publisher, digest string, meta *layer.Meta, config string) error {
	if !p.Mountless {
		return p.Transaction(ctx, func(string) error {
			for _, dir := range []string{st.LayersDir(), filepath.Dir(st.LayerDir(digest))} {
				if err := cvmfs.MarkCatalog(dir); err != nil {
					return err
				}
			}
			if meta != nil {
				if err := layer.WriteMeta(st.LayerMeta(digest), meta); err != nil {
					return err
				}
			}
			return addOrigin(st, digest, config)
		})
	}
	for _, dir := range []string{st.LayersDir(), filepath.Dir(st.LayerDir(digest))} {
		if err := p.MakeCatalog(ctx, dir); err != nil {
			return err
		}
	}
	rel, err := p.Rel(st.LayerMeta(digest))
	if err != nil {
		return err
	}
	origins := readOrigins(st, digest)
	if !slices.Contains(origins, config) {
		origins = append(origins, config)
	}
	slices.Sort(origins)
	o, err := json.Marshal(struct {
		Origin []string `json:"origin"`
	}{origins})
	if err != nil {
		return err
	}
	files := []cvmfs.File{{Name: "origin.json", Data: o}}
	if meta != nil {
		m, err := json.MarshalIndent(meta, "", "  ")
		if err != nil {
			return err
		}
		files = append(files, cvmfs.File{Name: layer.MetaFile, Data: append(m, '\n')})
	}
	return p.IngestFiles(ctx, rel, files...)
}

// originCVMFS adds config to the origin.json of a layer already in the repository, when it
// is not there yet (a transaction only when something changes).
func (s *Service) originCVMFS(ctx context.Context, st *store.Store, p *cvmfs.Publisher, digest, config string) error {
	if slices.Contains(readOrigins(st, digest), config) {
		return nil
	}
	return s.describeCVMFS(ctx, st, p, digest, nil, config)
}
