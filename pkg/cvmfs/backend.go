package cvmfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Kind is how a repository's store is written.
type Kind string

const (
	// Dir writes the store as plain directories under --store-root (the default).
	Dir Kind = "dir"
	// Transactions publishes through the publisher's cvmfs_server: layers streamed with
	// ingest --catalog, everything else inside transaction/publish on its writable mount.
	Transactions Kind = "cvmfs"
	// Mountless publishes everything through cvmfs_server ingest, for a gateway publisher
	// without a writable mount (the repository may be mounted read-only for reading).
	Mountless Kind = "cvmfs-ingest"
)

// Kinds lists the backends, for flag help.
var Kinds = []Kind{Dir, Transactions, Mountless}

// ParseBackends reads REPO=KIND settings (--store-backend): REPO a CVMFS repository name
// (the part of cvmfs_repo before any sub-directory), KIND one of Kinds.
func ParseBackends(specs []string) (map[string]Kind, error) {
	out := map[string]Kind{}
	for _, s := range specs {
		repo, kind, ok := strings.Cut(s, "=")
		if !ok || repo == "" || strings.Contains(repo, "/") {
			return nil, fmt.Errorf("--store-backend %q: want REPO=KIND, REPO a repository name such as unpacked.cern.ch (no sub-directory), KIND one of %s", s, kindList())
		}
		if !slices.Contains(Kinds, Kind(kind)) {
			return nil, fmt.Errorf("--store-backend %q: unknown backend %q: choose one of %s", s, kind, kindList())
		}
		if old, dup := out[repo]; dup && old != Kind(kind) {
			return nil, fmt.Errorf("--store-backend: %s is given both %s and %s", repo, old, kind)
		}
		out[repo] = Kind(kind)
	}
	return out, nil
}

func kindList() string {
	var s []string
	for _, k := range Kinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// Backends chooses, per repository, how its store is written.
type Backends struct {
	Kinds     map[string]Kind // repository name -> kind; missing: Dir
	StoreRoot string          // where repositories are mounted (--store-root, /cvmfs)
	Bin       string          // cvmfs_server ("" = $FLATBED_CVMFS_SERVER, else cvmfs_server)
	Locks     Locker          // the bus's leases: one transaction per repository everywhere
	Log       *slog.Logger
	Stop      context.Context // the process's context: see Publisher.Stop
}

// Publisher is the publisher of cvmfsRepo (a repository name with an optional sub-directory,
// as a wish's cvmfs_repo), nil when its store is a plain directory.
func (b *Backends) Publisher(cvmfsRepo string) *Publisher {
	if b == nil {
		return nil
	}
	name, _, _ := strings.Cut(cvmfsRepo, "/")
	kind := b.Kinds[name]
	if kind == "" || kind == Dir {
		return nil
	}
	return &Publisher{Repo: name, Bin: b.Bin, Root: filepath.Join(b.StoreRoot, name), Locks: b.Locks, Log: b.Log, Mountless: kind == Mountless,
		Stop: b.Stop}
}

// Rel is path (under the repository's mountpoint) relative to the repository's root, as
// cvmfs_server takes it.
func (p *Publisher) Rel(path string) (string, error) {
	rel, err := filepath.Rel(p.Mountpoint(), path)
	if err != nil {
		return "", err
	}
	rel = filepath.ToSlash(rel)
	if err := checkRel(rel); err != nil {
		return "", fmt.Errorf("%s is not inside repository %s (%s): %w", path, p.Repo, p.Mountpoint(), err)
	}
	return rel, nil
}

// File is one entry of IngestFiles: a regular file (Data) or, with Link set, a symlink.
type File struct {
	Name string // relative to the base, slash-separated
	Data []byte
	Link string // symlink target
}

// IngestFiles publishes a few small files (metadata, a public symlink) under base with one
// ingest, as a mountless publisher must.
func (p *Publisher) IngestFiles(ctx context.Context, base string, files ...File) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dirs := map[string]bool{}
	for _, f := range files {
		if err := checkRel(f.Name); err != nil {
			return err
		}
		for d := filepath.Dir(f.Name); d != "." && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.Name, Mode: 0o644, Size: int64(len(f.Data)), ModTime: now}
		if f.Link != "" {
			h = &tar.Header{Typeflag: tar.TypeSymlink, Name: f.Name, Linkname: f.Link, Mode: 0o777, ModTime: now}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if f.Link == "" {
			if _, err := tw.Write(f.Data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return p.Ingest(ctx, base, io.Reader(&buf), false)
}

// MakeCatalog makes dir (under the mountpoint) the root of a nested catalog with an empty
// ingest --catalog, unless the repository shows it is one already: a mountless publisher's
// way to place a .cvmfscatalog.
func (p *Publisher) MakeCatalog(ctx context.Context, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ".cvmfscatalog")); err == nil {
		return nil
	}
	rel, err := p.Rel(dir)
	if err != nil {
		return err
	}
	var empty bytes.Buffer
	_ = tar.NewWriter(&empty).Close()
	return p.Ingest(ctx, rel, &empty, true)
}
