package events

import (
	"fmt"
	"strings"
)

// Lifecycle events: what delete-image and garbage-collection took out of a repository, so
// that downstream automation (a CVMFS publisher's monitoring, a catalogue of images) hears
// of it. They belong to no wish: they carry the repository and what was removed, and the
// CloudEvents correlationid extension names the run that removed it.

// MaxListed bounds the paths one store.collected event lists (a collection may remove
// thousands); RemovedCount says how many there were.
const MaxListed = 1000

// ImageDeleted says an image's names were taken out of a repository: its public path, its
// recorded manifest and its podman entry. Its layers and flat tree stay until a garbage
// collection finds no other image uses them (store.collected).
type ImageDeleted struct {
	CvmfsRepo   string   `json:"cvmfs_repo"`
	Name        string   `json:"name"`         // registry/repository:tag (or @digest): the store name
	Removed     []string `json:"removed"`      // paths removed, relative to the repository
	PodmanEntry bool     `json:"podman_entry"` // its podmanStore entry was removed
}

// StoreCollected says a garbage collection removed the layers and flat trees no recorded
// image used any more.
type StoreCollected struct {
	CvmfsRepo    string   `json:"cvmfs_repo"`
	Removed      []string `json:"removed"`       // .layers/xx/<hex> and .flat/xx/<hex>, at most MaxListed
	RemovedCount int      `json:"removed_count"` // how many were removed in all
	KeptCount    int      `json:"kept_count"`    // unused but kept: within the grace period or too young
	GraceDays    int      `json:"grace_days"`    // --grace-period, in days
}

func (e *ImageDeleted) Validate() error {
	if err := CheckRepo(e.CvmfsRepo); err != nil {
		return fmt.Errorf("cvmfs_repo: %w", err)
	}
	if err := checkImageText("name", e.Name, true); err != nil {
		return err
	}
	if err := checkRel("name", e.Name); err != nil {
		return err
	}
	if len(e.Removed) > 2+2*MaxPlatforms {
		return fmt.Errorf("removed lists %d paths; an image has a public path and a recorded manifest, and a multi-arch image a link and a record per platform (at most %d)",
			len(e.Removed), MaxPlatforms)
	}
	for _, p := range e.Removed {
		if p != e.Name && p != ".metadata/"+e.Name && !isPlatformPath(p, e.Name) {
			return fmt.Errorf("removed %q is neither the image's public path nor its .metadata directory, nor a platform's", clip(p))
		}
	}
	return nil
}

func (e *StoreCollected) Validate() error {
	if err := CheckRepo(e.CvmfsRepo); err != nil {
		return fmt.Errorf("cvmfs_repo: %w", err)
	}
	if len(e.Removed) > MaxListed || len(e.Removed) > e.RemovedCount {
		return fmt.Errorf("removed lists %d paths of removed_count %d (at most %d)", len(e.Removed), e.RemovedCount, MaxListed)
	}
	for _, p := range e.Removed {
		if err := checkRel("removed", p); err != nil {
			return err
		}
		if parts := strings.Split(p, "/"); len(parts) != 3 || (parts[0] != ".layers" && parts[0] != ".flat") {
			return fmt.Errorf("removed %q is not .layers/xx/<digest> or .flat/xx/<digest>", clip(p))
		}
	}
	return checkNonNegative("removed_count, kept_count and grace_days", float64(e.RemovedCount), float64(e.KeptCount), float64(e.GraceDays))
}
