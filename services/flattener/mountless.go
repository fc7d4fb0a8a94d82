package flattener

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/pkg/cvmfs"
	"flatbed.dev/pkg/flatten"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/singularity"
	"flatbed.dev/pkg/store"
)

// mountless is the publisher of a repository published only through cvmfs_server ingest
// (--store-backend REPO=cvmfs-ingest), nil otherwise.
func (s *Service) mountless(cvmfsRepo string) *cvmfs.Publisher {
	if s.CVMFS == nil {
		return nil
	}
	if p := s.CVMFS(cvmfsRepo); p != nil && p.Mountless {
		return p
	}
	return nil
}

// flattenMountless publishes an image into a repository without a writable mount (its
// layers read from the read-only mount at the store root): the flat tree is built in a
// local scratch directory and streamed into `ingest --catalog -b .flat/<xx>/<c>` (with the
// catalogs of .flat and .flat/<xx> made by empty ingests when missing), then the public
// symlink and, last, .metadata/<name> (the stored manifest says "converted") by one ingest
// each. The podman store, a set of files rewritten, is not kept there.
func (s *Service) flattenMountless(ctx context.Context, p *cvmfs.Publisher, st *store.Store, in events.LayerIngested, desc *events.Description,
	final string, start time.Time, log *slog.Logger) error {
	img := in.Image
	if multi(in) {
		return events.Permanent(fmt.Errorf("image %s: multi-arch images are not published mountless yet (--store-backend %s=cvmfs-ingest); use %s=cvmfs", img.Name, p.Repo, p.Repo))
	}
	scratch, err := os.MkdirTemp("", "flatbed-flat-")
	if err != nil {
		return err
	}
	defer store.RemoveAll(scratch)
	sc := store.New(scratch)
	present := st.HasFlat(img.ConfigDigest) && !rebuild(final, in.Job)
	counted := final
	if !present {
		counted = sc.FlatDir(img.ConfigDigest)
		if err := s.buildLocal(ctx, st, in, desc, counted, log); err != nil {
			return err
		}
		for _, dir := range []string{filepath.Join(st.Root, ".flat"), filepath.Dir(final)} {
			if err := p.MakeCatalog(ctx, dir); err != nil {
				return err
			}
		}
		rel, err := p.Rel(final)
		if err != nil {
			return events.Permanent(err)
		}
		if err := p.IngestTree(ctx, rel, counted, true); err != nil {
			return err
		}
	}
	if present {
		// The tree's count as recorded is kept, as on a writable mount (record.go).
		if b, err := os.ReadFile(filepath.Join(st.MetadataDir(img.Name), lifecycle.RecordFile)); err == nil {
			if _, err := store.WriteFileAtomic(filepath.Join(sc.MetadataDir(img.Name), lifecycle.RecordFile), b, 0o644); err != nil {
				return err
			}
		}
	}
	if _, err := record(sc, img, in.Job.Image, counted, !present, &writes{}); err != nil {
		return err
	}
	if err := recordConfig(sc, img.Name, desc.RawConfig); err != nil {
		return err
	}
	if _, err := store.WriteFileAtomic(sc.ManifestPath(img.Name), desc.Manifest, 0o644); err != nil {
		return err
	}
	// What the repository shows already (a redelivered layer.ingested, the second of an
	// image's) is not ingested again: each ingest is a publish.
	public, target := st.PublicPath(img.Name), publicTarget(img.Name, st.Root, final)
	if old, err := os.Readlink(public); err != nil || old != target {
		linkDir, err := p.Rel(filepath.Dir(public))
		if err != nil {
			return events.Permanent(err)
		}
		if err := p.IngestFiles(ctx, linkDir, cvmfs.File{Name: filepath.Base(public), Link: target}); err != nil {
			return err
		}
	}
	if !sameFiles(sc.MetadataDir(img.Name), st.MetadataDir(img.Name)) {
		metaRel, err := p.Rel(st.MetadataDir(img.Name))
		if err != nil {
			return events.Permanent(err)
		}
		if err := p.IngestTree(ctx, metaRel, sc.MetadataDir(img.Name), false); err != nil {
			return err
		}
	}
	flatRel, _ := filepath.Rel(st.Root, final)
	out := events.ImageFlattened{Job: in.Job, Image: img, FlatPath: filepath.ToSlash(flatRel), PublicPath: img.Name,
		AlreadyPresent: present, Seconds: time.Since(start).Seconds()}
	env, err := events.New(events.ImageFlattenedType, source, events.ID(events.ImageFlattenedType, in.Job.WishID, img.Digest), in.Job, in.Job.Image, out)
	if err != nil {
		return err
	}
	log.Info("flat root file system ingested into CernVM-FS", "repo", p.Repo, "path", flatRel, "built", !present)
	return s.Bus.Publish(ctx, env)
}

// buildLocal builds the flat tree of the image at dir, outside the store: its files copied
// from the layers (they are in another catalog), with the Singularity files.
func (s *Service) buildLocal(ctx context.Context, st *store.Store, in events.LayerIngested, desc *events.Description, dir string, log *slog.Logger) error {
	layers := make([]flatten.Layer, 0, len(desc.Layers))
	for _, l := range desc.Layers {
		m, err := layer.ReadMeta(st.LayerMeta(l.Digest))
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		layers = append(layers, flatten.Layer{FS: st.LayerFS(l.Digest), Meta: m})
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_, err := flatten.Build(ctx, dir, layers, flatten.Options{Logger: log})
	if err == nil {
		c := desc.Config
		err = singularity.Write(dir, singularity.Config{Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir})
	}
	if err != nil {
		err = fmt.Errorf("flattening %s: %w", in.Job.Image, err)
		if permanent(err) {
			err = events.Permanent(err)
		}
	}
	return err
}

// sameFiles says every file in the directory from is in the directory to with the same bytes.
func sameFiles(from, to string) bool {
	es, err := os.ReadDir(from)
	if err != nil {
		return false
	}
	for _, e := range es {
		if !e.Type().IsRegular() {
			return false
		}
		a, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return false
		}
		b, err := os.ReadFile(filepath.Join(to, e.Name()))
		if err != nil || !bytes.Equal(a, b) {
			return false
		}
	}
	return true
}
