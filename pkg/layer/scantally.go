package layer

import (
	"archive/tar"
	"path"
	"strings"
)

// tallier predicts, from a layer's tar entries alone, the Tally of the tree Extract writes
// with WhiteoutOCI (markers kept as empty files): what Scan records for a layer that is
// unpacked elsewhere (cvmfs_server ingest), so that verify and the resolver's re-run check
// can find a file removed or cut short there too.
//
// Where the tree written could depend on the unpacker — a path written twice in the layer
// (Extract replaces; another unpacker may merge or refuse), device nodes and fifos (Extract
// drops most devices, cvmfs keeps them), hard links to an earlier layer's file, entries
// Extract skips (AUFS bookkeeping, an empty symlink target, an entry naming the root), a
// whiteout that is not an empty file, a .cvmfscatalog of the layer's own at its top — the
// tally is unknown: none is recorded and the layer is checked for presence only, so an
// undamaged layer is never reported as drifted.
type tallier struct {
	nodes   map[string]tnode // every path the layer makes, named or as a parent
	unknown string           // why the tally cannot be predicted; "" while it can
}

type tnode struct {
	kind byte  // 'f' regular file, 'd' directory, 'l' symlink
	size int64 // of a regular file
}

func newTallier() *tallier { return &tallier{nodes: map[string]tnode{}} }

// giveUp drops what was gathered: the tally is unknown, for reason.
func (t *tallier) giveUp(reason string) {
	if t.unknown == "" {
		t.unknown, t.nodes = reason, nil
	}
}

// add accounts for one entry, name being its cleaned name.
func (t *tallier) add(h *tar.Header, name string) {
	if t.unknown != "" || h.Typeflag == tar.TypeXGlobalHeader {
		return
	}
	if name == "" {
		if h.Typeflag != tar.TypeDir {
			t.giveUp("an entry that is not a directory names the layer root")
		}
		return
	}
	if aufsMeta(name) {
		t.giveUp("AUFS bookkeeping " + name)
		return
	}
	if name == CatalogMarker {
		t.giveUp("the layer has a " + CatalogMarker + " of its own")
		return
	}
	// Parents first, outermost first: Extract makes the missing ones as directories.
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		switch n, ok := t.nodes[name[:i]]; {
		case !ok:
			t.nodes[name[:i]] = tnode{kind: 'd'}
		case n.kind != 'd':
			t.giveUp("a parent of " + name + " is not a directory")
			return
		}
	}
	if n, ok := t.nodes[name]; ok {
		if h.Typeflag == tar.TypeDir && n.kind == 'd' {
			return // a directory named again (or after a child made it): still one
		}
		t.giveUp(name + " is written twice in the layer")
		return
	}
	if strings.HasPrefix(path.Base(name), whPrefix) {
		if (h.Typeflag != tar.TypeReg && h.Typeflag != typeRegA) || h.Size != 0 {
			t.giveUp("whiteout " + name + " is not an empty file")
			return
		}
	}
	switch h.Typeflag {
	case tar.TypeReg, typeRegA:
		t.nodes[name] = tnode{kind: 'f', size: h.Size}
	case tar.TypeDir:
		t.nodes[name] = tnode{kind: 'd'}
	case tar.TypeSymlink:
		if h.Linkname == "" {
			t.giveUp("symlink " + name + " has an empty target")
			return
		}
		t.nodes[name] = tnode{kind: 'l'}
	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
		n, ok := t.nodes[target]
		if err != nil || !ok || target == name || n.kind == 'd' {
			t.giveUp("hard link " + name + " is not to a file of this layer")
			return
		}
		t.nodes[name] = n // another name of the same file: counted again, as Count does
	default:
		t.giveUp("entry " + name + " of type " + string(h.Typeflag) + " (devices, fifos and others depend on the unpacker)")
	}
}

// tally is the predicted Tally, or nil when it is unknown.
func (t *tallier) tally() *Tally {
	if t.unknown != "" {
		return nil
	}
	var out Tally
	for _, n := range t.nodes {
		switch n.kind {
		case 'f':
			out.Files++
			out.Bytes += n.size
		case 'd':
			out.Dirs++
		case 'l':
			out.Symlinks++
		}
	}
	return &out
}
