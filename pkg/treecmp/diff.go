package treecmp

import (
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// Diff lists the differences between a and b, one human-readable line each,
// sorted (so by path): "PATH: only in a (TYPE)", "PATH: only in b (TYPE)",
// "PATH: type A != B" or "PATH: FIELD A != B" for each differing field.
// Empty means equal.
func Diff(a, b Tree) []string {
	var out []string
	for p, ea := range a {
		eb, ok := b[p]
		if !ok {
			out = append(out, fmt.Sprintf("%s: only in a (%s)", p, ea.Type))
			continue
		}
		out = append(out, diffEntry(p, ea, eb)...)
	}
	for p, eb := range b {
		if _, ok := a[p]; !ok {
			out = append(out, fmt.Sprintf("%s: only in b (%s)", p, eb.Type))
		}
	}
	sort.Strings(out)
	return out
}

func diffEntry(p string, a, b Entry) []string {
	if a.Type != b.Type {
		return []string{fmt.Sprintf("%s: type %s != %s", p, a.Type, b.Type)}
	}
	var out []string
	add := func(field string, x, y any) {
		out = append(out, fmt.Sprintf("%s: %s %v != %v", p, field, x, y))
	}
	if a.Mode != b.Mode {
		add("mode", fmt.Sprintf("%04o", a.Mode), fmt.Sprintf("%04o", b.Mode))
	}
	if a.UID != b.UID || a.GID != b.GID {
		add("owner", fmt.Sprintf("%d:%d", a.UID, a.GID), fmt.Sprintf("%d:%d", b.UID, b.GID))
	}
	if a.Size != b.Size {
		add("size", a.Size, b.Size)
	}
	if a.SHA256 != b.SHA256 {
		add("sha256", short(a.SHA256), short(b.SHA256))
	}
	if a.Target != b.Target {
		add("target", fmt.Sprintf("%q", a.Target), fmt.Sprintf("%q", b.Target))
	}
	if a.Link != b.Link {
		add("hardlink group", fmt.Sprintf("%q", a.Link), fmt.Sprintf("%q", b.Link))
	}
	if a.Rdev != b.Rdev {
		add("device", dev(a.Rdev), dev(b.Rdev))
	}
	return out
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func dev(r uint64) string {
	return fmt.Sprintf("%d/%d", unix.Major(r), unix.Minor(r))
}
