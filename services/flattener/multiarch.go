package flattener

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"flatbed.dev/events"
	"flatbed.dev/pkg/lifecycle"
	"flatbed.dev/pkg/multiarch"
	"flatbed.dev/pkg/podman"
	"flatbed.dev/pkg/store"
)

// A multi-arch image (-m) is converted platform by platform, each as a single image is (its
// own flat tree, Singularity files and env), but published under
// .multiarch/<arch>[:<variant>]/<name> with its record under .metadata/.multiarch/…/<name>.
// The store is the join's state, as it is for layers: each platform, once in place, looks
// whether every platform the index offers is; the one that completes the set switches the
// public path to a variant symlink through $(CVMFS_ARCH), refreshes the alias directories
// (x86_64 -> amd64, aarch64 -> arm64:v8, …), records the index as the image's manifest and
// publishes one image.flattened for the whole image. A platform that fails fails the wish; the
// public path is never switched to a half set.

// Host is the platform the podman store lists for a multi-arch image (podman runs the host's
// images only): this process's (a variable for tests).
var Host = multiarch.Host()

// multi says in is one platform of a multi-arch conversion.
func multi(in events.LayerIngested) bool { return in.Job.MultiArch && in.Image.IndexDigest != "" }

// platformDone links one platform's flat tree at final under .multiarch (through w) and
// completes the image when it was the last platform missing: it returns the image's
// image.flattened then, to be published once the backend has published the changes (nil
// while a platform is missing).
func (s *Service) platformDone(ctx context.Context, st *store.Store, in events.LayerIngested, desc *events.Description, final string, present bool,
	start time.Time, log *slog.Logger, w *writes) (*events.Envelope, error) {
	img := in.Image
	name, dir := img.Name, multiarch.DirOf(img.Platform)
	if dir == "" {
		return nil, events.Permanent(fmt.Errorf("image %s: platform %q is not os/arch[/variant]", name, img.Platform))
	}
	index, chosen, err := s.chosen(ctx, img)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(chosen, func(d v1.Descriptor) bool { return d.Digest.String() == img.Digest }) {
		return nil, events.Permanent(fmt.Errorf("image %s: manifest %s (%s) is not one of the platforms its index %s offers", name, img.Digest, img.Platform, img.IndexDigest))
	}
	flatRel := rel(st, final)
	link := path.Join(".multiarch", dir, name)
	if err := w.symlink(store.RelTarget(link, flatRel), st.MultiarchPath(dir, name)); err != nil {
		return nil, err
	}
	meta := st.MultiarchMetadataDir(dir, name)
	if _, err := recordAt(meta, img, in.Job.Image, final, !present, w); err != nil {
		return nil, err
	}
	if err := w.file(filepath.Join(meta, lifecycle.ConfigFile), desc.RawConfig); err != nil {
		return nil, err
	}
	// The platform's manifest comes last: its presence is what "this platform is done" means.
	if err := w.file(filepath.Join(meta, "manifest.json"), desc.Manifest); err != nil {
		return nil, err
	}
	if w.dry && w.changed {
		return nil, nil // the real run looks at the other platforms, with this one in place
	}
	var flats []events.FlatPlatform
	var recs []lifecycle.PlatformRecord
	for _, c := range chosen {
		p := lifecycle.PlatformRecord{Platform: multiarch.String(*c.Platform), Dir: multiarch.Dir(*c.Platform), ManifestDigest: c.Digest.String()}
		if !lifecycle.PlatformDone(st, name, p) {
			if !w.dry {
				log.Info("platform converted; the image is published when every platform is", "platform", img.Platform, "waiting_for", p.Platform)
			}
			return nil, nil
		}
		f, err := platformImage(st, img, p)
		if err != nil {
			return nil, err
		}
		p.ConfigDigest = f.Image.ConfigDigest
		flats, recs = append(flats, f), append(recs, p)
	}
	return s.complete(ctx, st, in, index, flats, recs, present, start, log, w)
}

// chosen reads the index img was picked from and the platforms -m converts of it.
func (s *Service) chosen(ctx context.Context, img events.Image) ([]byte, []v1.Descriptor, error) {
	idx, ok := s.Descriptions.(events.Indexes)
	if !ok {
		return nil, nil, events.Permanent(fmt.Errorf("image %s: the description store keeps no index, which -m/--multi-arch needs", img.Name))
	}
	raw, err := idx.GetIndex(ctx, img.IndexDigest)
	if err != nil {
		if errors.Is(err, events.ErrNoDescription) {
			return nil, nil, events.Permanent(err)
		}
		return nil, nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, events.Permanent(fmt.Errorf("image %s: parsing its index %s: %w", img.Name, img.IndexDigest, err))
	}
	chosen, _, err := multiarch.Select(im, true, Host)
	if err != nil {
		return nil, nil, events.Permanent(fmt.Errorf("image %s: %w", img.Name, err))
	}
	return raw, chosen, nil
}

// platformImage is one platform of the image as the store records it (its manifest under
// .metadata/.multiarch), with its flat tree and link.
func platformImage(st *store.Store, img events.Image, p lifecycle.PlatformRecord) (events.FlatPlatform, error) {
	raw, err := os.ReadFile(filepath.Join(st.MultiarchMetadataDir(p.Dir, img.Name), "manifest.json"))
	if err != nil {
		return events.FlatPlatform{}, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return events.FlatPlatform{}, fmt.Errorf("image %s, platform %s: parsing its recorded manifest: %w", img.Name, p.Platform, err)
	}
	pi := img
	pi.Digest, pi.MediaType, pi.ConfigDigest = p.ManifestDigest, string(cmp.Or(m.MediaType, types.OCIManifestSchema1)), m.Config.Digest.String()
	pi.Platform, pi.LayerCount = p.Platform, len(m.Layers)
	return events.FlatPlatform{Image: pi, FlatPath: rel(st, st.FlatDir(pi.ConfigDigest)), Path: path.Join(".multiarch", p.Dir, img.Name)}, nil
}

// complete switches the whole image over (through w) once every platform is in place and
// returns its image.flattened.
func (s *Service) complete(ctx context.Context, st *store.Store, in events.LayerIngested, index []byte, flats []events.FlatPlatform, recs []lifecycle.PlatformRecord,
	present bool, start time.Time, log *slog.Logger, w *writes) (*events.Envelope, error) {
	name := in.Image.Name
	if err := linkAliases(st, w); err != nil {
		return nil, err
	}
	if err := w.symlink(store.RelTarget(name, path.Join(".multiarch", multiarch.CVMFSArch, name)), st.PublicPath(name)); err != nil {
		return nil, err
	}
	b, err := json.Marshal(lifecycle.Record{Image: in.Job.Image, ManifestDigest: in.Image.IndexDigest, IndexDigest: in.Image.IndexDigest, Platforms: recs})
	if err != nil {
		return nil, err
	}
	if err := w.file(filepath.Join(st.MetadataDir(name), lifecycle.RecordFile), b); err != nil {
		return nil, err
	}
	// A config recorded by an earlier single-platform conversion of this name is not the
	// image's any more: each platform's is under .metadata/.multiarch.
	if err := w.remove(filepath.Join(st.MetadataDir(name), lifecycle.ConfigFile)); err != nil {
		return nil, err
	}
	platforms := make([]v1.Platform, len(flats))
	for i, f := range flats {
		platforms[i], _ = multiarch.Parse(f.Image.Platform)
	}
	primary := multiarch.Primary(platforms, Host)
	podmanDone, podmanSeconds := false, 0.0
	if !in.Job.SkipPodman && platforms[primary].Architecture == Host.Architecture && platforms[primary].OS == Host.OS {
		// podman runs the host's platform: that one is listed under the image's name.
		podmanStart := time.Now()
		if err := s.addPodman(ctx, st, flats[primary], recs[primary], w); err != nil {
			return nil, err
		}
		podmanDone = true
		if !w.dry {
			podmanSeconds = time.Since(podmanStart).Seconds()
		}
	}
	// The index comes last: with it recorded, a HEAD of the tag tells the image unchanged.
	if err := w.file(st.ManifestPath(name), index); err != nil {
		return nil, err
	}
	p := flats[primary]
	out := events.ImageFlattened{Job: in.Job, Image: p.Image, FlatPath: p.FlatPath, PublicPath: name, AlreadyPresent: present,
		Seconds: time.Since(start).Seconds(), Platforms: flats, Podman: podmanDone, PodmanSeconds: podmanSeconds}
	env, err := events.New(events.ImageFlattenedType, source, events.ID(events.ImageFlattenedType, in.Job.WishID, in.Image.IndexDigest), in.Job, in.Job.Image, out)
	if err != nil {
		return nil, err
	}
	if !w.dry {
		log.Info("multi-arch image complete", "platforms", len(flats), "podman", podmanDone)
	}
	return env, nil
}

// addPodman lists one platform of the image in the podman store under the image's name.
func (s *Service) addPodman(ctx context.Context, st *store.Store, f events.FlatPlatform, p lifecycle.PlatformRecord, w *writes) error {
	desc, err := s.Descriptions.Get(ctx, f.Image)
	if err != nil {
		return err
	}
	var size int64
	if b, err := os.ReadFile(filepath.Join(st.MultiarchMetadataDir(p.Dir, f.Image.Name), lifecycle.RecordFile)); err == nil {
		var rec lifecycle.Record
		if json.Unmarshal(b, &rec) == nil && rec.Flat != nil {
			size = rec.Flat.Bytes
		}
	}
	return w.podman(st.Root, podman.Image{Name: f.Image.Name, ConfigDigest: f.Image.ConfigDigest, ManifestDigest: f.Image.Digest,
		Manifest: desc.Manifest, Config: desc.RawConfig, FlatDir: f.FlatPath, Size: size})
}

// linkAliases makes .multiarch's alias symlinks for the platform directories it holds, so
// $(CVMFS_ARCH) (uname -m: x86_64, aarch64, …) names them.
func linkAliases(st *store.Store, w *writes) error {
	es, err := os.ReadDir(st.MultiarchDir())
	if err != nil {
		return err
	}
	var dirs []string
	for _, e := range es {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".tmp-") {
			dirs = append(dirs, e.Name())
		}
	}
	for alias, target := range multiarch.Aliases(dirs) {
		if err := w.symlink(target, filepath.Join(st.MultiarchDir(), alias)); err != nil {
			return err
		}
	}
	return nil
}

// rel is p relative to the repository root, slash-separated.
func rel(st *store.Store, p string) string {
	r, _ := filepath.Rel(st.Root, p)
	return filepath.ToSlash(r)
}
