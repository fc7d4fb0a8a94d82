package layer

import (
	"fmt"
	"io/fs"
	"path/filepath"
)

// Tally counts what a tree holds, so that a later check can tell it was damaged: a file
// removed, added or cut short changes it.
type Tally struct {
	Files    int64 `json:"files"`    // regular file paths (each name of a hard link counts)
	Bytes    int64 `json:"bytes"`    // their sizes added up
	Dirs     int64 `json:"dirs"`     // directories, the root not counted
	Symlinks int64 `json:"symlinks"` //
	Others   int64 `json:"others"`   // devices, fifos, sockets
}

// CatalogMarker is the file that makes a directory of a CernVM-FS repository the root of a
// nested catalog: a publisher adds it at the top of layers and flat trees, so it is not
// counted as theirs there.
const CatalogMarker = ".cvmfscatalog"

// Count walks root (never following a symlink) and tallies what is below it, a
// CatalogMarker at its top left out.
func Count(root string) (Tally, error) {
	var t Tally
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root || (d.Name() == CatalogMarker && filepath.Dir(p) == root) {
			return nil
		}
		switch typ := d.Type(); {
		case typ.IsDir():
			t.Dirs++
		case typ.IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			t.Files++
			t.Bytes += fi.Size()
		case typ&fs.ModeSymlink != 0:
			t.Symlinks++
		default:
			t.Others++
		}
		return nil
	})
	if err != nil {
		return Tally{}, fmt.Errorf("counting %s: %w", root, err)
	}
	return t, nil
}

// Diff says how got differs from t ("" when it does not), e.g. "1 file fewer, 512 bytes fewer".
func (t Tally) Diff(got Tally) string {
	var out []string
	for _, c := range []struct {
		name       string
		want, have int64
	}{{"files", t.Files, got.Files}, {"bytes", t.Bytes, got.Bytes}, {"directories", t.Dirs, got.Dirs},
		{"symlinks", t.Symlinks, got.Symlinks}, {"other entries", t.Others, got.Others}} {
		if c.want != c.have {
			out = append(out, fmt.Sprintf("%s %d, recorded %d", c.name, c.have, c.want))
		}
	}
	if len(out) == 0 {
		return ""
	}
	s := out[0]
	for _, o := range out[1:] {
		s += ", " + o
	}
	return s
}
