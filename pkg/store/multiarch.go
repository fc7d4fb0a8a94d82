package store

import (
	"path/filepath"
	"strings"
)

// MultiarchDir is .multiarch: one directory per platform (<arch>[:<variant>]) holding its
// images' links, plus the alias symlinks $(CVMFS_ARCH) resolves through (x86_64 -> amd64).
func (s *Store) MultiarchDir() string { return filepath.Join(s.Root, ".multiarch") }

// MultiarchPath is .multiarch/<dir>/<registry>/<repository>:<tag>, one platform's link to
// its flat tree.
func (s *Store) MultiarchPath(dir, name string) string {
	return filepath.Join(s.Root, ".multiarch", dir, filepath.FromSlash(name))
}

// MultiarchMetadataDir is .metadata/.multiarch/<dir>/<registry>/<repository>:<tag>: what the
// store records of one platform of a multi-arch image (manifest.json, flatbed.json,
// config.json), as .metadata/<name> records a single image.
func (s *Store) MultiarchMetadataDir(dir, name string) string {
	return filepath.Join(s.Root, ".metadata", ".multiarch", dir, filepath.FromSlash(name))
}

// MultiarchMetadataTop is .metadata/.multiarch, which holds no image of its own.
func (s *Store) MultiarchMetadataTop() string {
	return filepath.Join(s.Root, ".metadata", ".multiarch")
}

// RelTarget is the relative symlink target from the link at rel (relative to the root) to
// target (also relative to the root), e.g. "../../.flat/0f/0f35…" for
// registry/library/ubuntu:22.04.
func RelTarget(rel, target string) string {
	return strings.Repeat("../", strings.Count(filepath.ToSlash(rel), "/")) + filepath.ToSlash(target)
}
