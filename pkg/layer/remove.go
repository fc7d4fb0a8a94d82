package layer

import (
	"strings"

	"flatbed.dev/pkg/beneath"
)

// replace removes whatever this layer put at base (rel is its path) so a later entry with the
// same name can take its place: in a tar the last entry for a name wins. A directory goes
// with its whole tree, and with the bookkeeping (deferred directory metadata, whiteouts,
// cross-layer links) of everything below it.
func (x *extractor) replace(pfd int, base, rel string) error {
	wasDir, err := beneath.RemoveAt(pfd, base)
	if err != nil {
		return err
	}
	x.forget(rel, wasDir)
	return nil
}

// forget drops the bookkeeping of rel (and, for a removed directory, of everything below it).
func (x *extractor) forget(rel string, tree bool) {
	delete(x.dirs, rel)
	delete(x.whiteouts, rel)
	delete(x.implicit, rel)
	x.forgetLink(rel)
	if !tree {
		return
	}
	prefix := rel + "/"
	for p := range x.dirs {
		if strings.HasPrefix(p, prefix) {
			delete(x.dirs, p)
		}
	}
	for p := range x.whiteouts {
		if strings.HasPrefix(p, prefix) {
			delete(x.whiteouts, p)
		}
	}
	for p := range x.implicit {
		if strings.HasPrefix(p, prefix) {
			delete(x.implicit, p)
		}
	}
	if len(x.linkPaths) > 0 {
		x.meta.Links = removeLinks(x.meta.Links, func(l Link) bool { return strings.HasPrefix(l.Path, prefix) }, x.linkPaths)
	}
}

// forgetLink drops a recorded cross-layer link at rel: a later entry of the same name wins.
func (x *extractor) forgetLink(rel string) {
	if _, ok := x.linkPaths[rel]; ok {
		x.meta.Links = removeLinks(x.meta.Links, func(l Link) bool { return l.Path == rel }, x.linkPaths)
	}
}

func removeLinks(links []Link, drop func(Link) bool, index map[string]struct{}) []Link {
	out := links[:0]
	for _, l := range links {
		if drop(l) {
			delete(index, l.Path)
			continue
		}
		out = append(out, l)
	}
	return out
}
