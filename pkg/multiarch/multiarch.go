// Package multiarch holds what a multi-arch image (an index of per-platform manifests) needs
// in the store: which platforms of an index are converted, the .multiarch/<arch>[:<variant>]
// directory of each, and the aliases that let $(CVMFS_ARCH), the client's `uname -m`, name
// them, as DUCC lays them out.
package multiarch

import (
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// CVMFSArch is the CVMFS variant symlink variable a client sets to its `uname -m` (x86_64,
// aarch64, …) unless configured otherwise.
const CVMFSArch = "$(CVMFS_ARCH)"

// Dir names a platform's directory under .multiarch: "<arch>" or "<arch>:<variant>"
// (amd64, arm64:v8, arm:v7), as DUCC does.
func Dir(p v1.Platform) string {
	if p.Variant == "" {
		return p.Architecture
	}
	return p.Architecture + ":" + p.Variant
}

// String is "os/arch[/variant]", as events name a platform.
func String(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Parse reads "os/arch[/variant]".
func Parse(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, fmt.Errorf("platform %q is not os/arch[/variant]", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// DirOf is Dir of a platform named "os/arch[/variant]" ("" when it is not one).
func DirOf(platform string) string {
	p, err := Parse(platform)
	if err != nil {
		return ""
	}
	return Dir(p)
}

// Host is the platform this process runs on, as an index names it: linux/arm64/v8 on a
// 64-bit ARM machine (containerd's default variant), linux/arm/v7 on GOARM=7, and so on.
func Host() v1.Platform {
	p := v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch p.Architecture {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// alias is one name CVMFS_ARCH may take (a `uname -m` value) and the directories it stands
// for, the first present winning.
type alias struct {
	name    string
	targets []string
}

// aliases are DUCC's (cvmfs/cvmfs#4170: aarch64, arm64, armel, i386, x86-64, x86_64), then
// other `uname -m` spellings of the same machines (i686, armv7l, armv6l, armhf).
var aliases = []alias{
	{"x86_64", []string{"amd64"}},
	{"x86-64", []string{"amd64"}},
	{"aarch64", []string{"arm64:v8", "arm64"}},
	{"arm64", []string{"arm64:v8"}},
	{"armel", []string{"arm:v6"}},
	{"i386", []string{"386"}},
	{"i686", []string{"386"}},
	{"armv7l", []string{"arm:v7"}},
	{"armhf", []string{"arm:v7"}},
	{"armv6l", []string{"arm:v6"}},
}

// Aliases says which alias symlinks .multiarch holds beside the platform directories
// present: alias name -> the directory it links to. A name that is a platform directory
// itself is never an alias.
func Aliases(present []string) map[string]string {
	out := map[string]string{}
	for _, a := range aliases {
		if slices.Contains(present, a.name) {
			continue
		}
		for _, t := range a.targets {
			if slices.Contains(present, t) {
				out[a.name] = t
				break
			}
		}
	}
	return out
}

// IsAlias says name is one of the alias names .multiarch may hold.
func IsAlias(name string) bool {
	return slices.ContainsFunc(aliases, func(a alias) bool { return a.name == name })
}

// Convertible says an index entry is an image of a platform to convert: a linux one with an
// architecture (attestation manifests say unknown/unknown) and an architecture and variant
// that can name a directory under .multiarch (an index is the image's to write: "..", "/" or
// a leading dot would lead elsewhere in the store).
func Convertible(d v1.Descriptor) bool {
	p := d.Platform
	return p != nil && p.OS == "linux" && p.Architecture != "unknown" && dirName.MatchString(p.Architecture) &&
		(p.Variant == "" || dirName.MatchString(p.Variant)) && (d.MediaType == "" || d.MediaType.IsImage())
}

// dirName is what an architecture or variant may be: events.Image's platform allows no more.
var dirName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Select picks what to convert of an index: with all, every convertible platform (the first
// entry of each, in index order); else the one best matching host. skipped names the
// platforms of the other convertible entries. An index with no match for host is an error
// naming what it offers.
func Select(idx *v1.IndexManifest, all bool, host v1.Platform) (chosen []v1.Descriptor, skipped []string, err error) {
	var cands []v1.Descriptor
	seen := map[string]bool{}
	for _, d := range idx.Manifests {
		if !Convertible(d) || seen[Dir(*d.Platform)] {
			continue
		}
		seen[Dir(*d.Platform)] = true
		cands = append(cands, d)
	}
	if len(cands) == 0 {
		return nil, nil, fmt.Errorf("the index has no linux image (it offers %s)", offered(idx))
	}
	if all {
		return cands, nil, nil
	}
	best := -1
	for i, d := range cands {
		if rank(*d.Platform, host) > 0 && (best < 0 || rank(*d.Platform, host) > rank(*cands[best].Platform, host)) {
			best = i
		}
	}
	if best < 0 {
		return nil, nil, fmt.Errorf("the index has no image for this host's platform %s (it offers %s); convert every platform with -m/--multi-arch",
			String(host), offered(idx))
	}
	for i, d := range cands {
		if i != best {
			skipped = append(skipped, String(*d.Platform))
		}
	}
	return []v1.Descriptor{cands[best]}, skipped, nil
}

// rank says how well p runs on host: 0 not at all, higher better. As containerd's matcher:
// same OS and architecture; arm64's variant v8 is its default; a 32-bit arm host runs its
// own variant best and lower ones after.
func rank(p, host v1.Platform) int {
	if p.OS != host.OS || p.Architecture != host.Architecture {
		return 0
	}
	pv, hv := normVariant(p), normVariant(host)
	switch {
	case pv == hv:
		return 100
	case p.Architecture == "arm" && pv != "" && hv != "" && pv < hv:
		return 50 + int(pv[len(pv)-1]-'0')
	case p.Architecture != "arm" && p.Architecture != "arm64" && pv == "":
		return 10
	}
	return 0
}

func normVariant(p v1.Platform) string {
	switch {
	case p.Architecture == "arm64" && (p.Variant == "" || p.Variant == "v8" || p.Variant == "8"):
		return "v8"
	case p.Architecture == "amd64" && p.Variant == "v1":
		return ""
	}
	return p.Variant
}

// offered lists an index's platforms for an error message.
func offered(idx *v1.IndexManifest) string {
	var ps []string
	for _, d := range idx.Manifests {
		if d.Platform != nil {
			ps = append(ps, String(*d.Platform))
		}
	}
	if len(ps) == 0 {
		return "no platform"
	}
	return strings.Join(ps, ", ")
}

// Primary is the one platform of chosen that stands for the whole image where one must
// (the podman store, the image an event names): the host's when chosen, else the first.
func Primary(chosen []v1.Platform, host v1.Platform) int {
	best, score := 0, 0
	for i, p := range chosen {
		if r := rank(p, host); r > score {
			best, score = i, r
		}
	}
	return best
}
