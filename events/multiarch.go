package events

import (
	"fmt"
	"path"
	"strings"
)

// MaxPlatforms bounds the platforms of one multi-arch image an event may name (an index
// lists a handful; attestation entries are never chosen).
const MaxPlatforms = 64

// checkPlatforms checks the platforms chosen from one index: bounded, each a valid image of
// the same name and index on a platform of its own, img being one of them.
func checkPlatforms(img Image, ps []Image) error {
	if len(ps) == 0 {
		return nil
	}
	if len(ps) > MaxPlatforms {
		return fmt.Errorf("platforms: %d, over the limit of %d", len(ps), MaxPlatforms)
	}
	seen := map[string]bool{}
	found := false
	for i, p := range ps {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("platforms[%d]: %w", i, err)
		}
		if p.IndexDigest == "" || p.Name != img.Name || p.IndexDigest != img.IndexDigest {
			return fmt.Errorf("platforms[%d] (%s) is not a platform of the index %s of %s", i, p.Platform, clip(img.IndexDigest), clip(img.Name))
		}
		if seen[p.Platform] {
			return fmt.Errorf("platforms[%d]: platform %s is named twice", i, p.Platform)
		}
		seen[p.Platform] = true
		found = found || p == img
	}
	if !found {
		return fmt.Errorf("image (%s) is not one of the platforms", img.Platform)
	}
	return nil
}

// checkFlatPlatforms checks the flat trees of a multi-arch image, as checkPlatforms does, and
// that each platform's paths are the store's relative paths for it.
func checkFlatPlatforms(img Image, fs []FlatPlatform) error {
	ps := make([]Image, len(fs))
	for i, f := range fs {
		ps[i] = f.Image
	}
	if err := checkPlatforms(img, ps); err != nil {
		return err
	}
	for i, f := range fs {
		if err := checkRel(fmt.Sprintf("platforms[%d].flat_path", i), f.FlatPath); err != nil {
			return err
		}
		if err := checkRel(fmt.Sprintf("platforms[%d].path", i), f.Path); err != nil {
			return err
		}
		if f.FlatPath == "" || path.Dir(path.Dir(f.FlatPath)) != ".flat" {
			return fmt.Errorf("platforms[%d].flat_path %q is not a flat tree (.flat/xx/<hex>)", i, clip(f.FlatPath))
		}
		if !strings.HasPrefix(f.Path, ".multiarch/") {
			return fmt.Errorf("platforms[%d].path %q is not under .multiarch/", i, clip(f.Path))
		}
	}
	return nil
}

// isPlatformPath says p is what the store holds of one platform of the multi-arch image name:
// .multiarch/<dir>/<name> or .metadata/.multiarch/<dir>/<name>, dir one path component.
func isPlatformPath(p, name string) bool {
	rest, ok := strings.CutPrefix(p, ".metadata/")
	if !ok {
		rest = p
	}
	rest, ok = strings.CutPrefix(rest, ".multiarch/")
	if !ok {
		return false
	}
	dir, n, ok := strings.Cut(rest, "/")
	return ok && n == name && dir != "" && dir != "." && dir != ".."
}
