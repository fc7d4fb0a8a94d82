package layer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// WhiteoutFormat says how deletions are kept in a layerfs.
type WhiteoutFormat string

const (
	// WhiteoutOverlay is what overlayfs reads: ".wh.<name>" becomes a 0/0 character device
	// "<name>" and ".wh..wh..opq" becomes the xattr trusted.overlay.opaque=y on its directory.
	// Needs CAP_MKNOD and CAP_SYS_ADMIN (trusted.* xattrs), i.e. root.
	WhiteoutOverlay WhiteoutFormat = "overlay"
	// WhiteoutOCI keeps the OCI marker files ".wh.<name>" and ".wh..wh..opq" as empty regular
	// files, for processes that cannot make device nodes.
	WhiteoutOCI WhiteoutFormat = "oci"
)

// OpaqueXattr is the overlayfs xattr that marks a directory opaque.
const OpaqueXattr = "trusted.overlay.opaque"

// Link is a hard link of a layer whose target is not in the same layer (it refers to a file
// of an earlier layer). It cannot exist inside layerfs; the flattener makes it in the flat tree.
type Link struct {
	Path   string `json:"path"`   // slash-separated, relative to the layer root, no leading "/"
	Target string `json:"target"` // same form
}

// Meta describes one unpacked layer. It is stored as .layers/<xx>/<d>/.metadata/layer.json and
// is written into the temporary directory before the layer is published, so a published layer
// always has it.
type Meta struct {
	Digest string `json:"digest"`  // compressed digest, "sha256:…"
	DiffID string `json:"diff_id"` // uncompressed digest, "sha256:…"
	// Compression is what the blob turned out to be (gzip, zstd or tar). Not the media type:
	// one blob can be named by Docker and OCI manifests alike, and the store must not depend
	// on which manifest came first.
	Compression      string         `json:"compression"`
	Size             int64          `json:"size"`              // compressed bytes read
	UncompressedSize int64          `json:"uncompressed_size"` // tar bytes read
	Entries          int            `json:"entries"`           // tar entries seen
	Whiteouts        WhiteoutFormat `json:"whiteouts"`
	Links            []Link         `json:"links,omitempty"`   // hard links to earlier layers, in tar order
	Skipped          []string       `json:"skipped,omitempty"` // entries not kept, with the reason
	// SkippedMore counts the skipped entries beyond the first 1000, which are not listed.
	SkippedMore int `json:"skipped_more,omitempty"`
	// ImplicitDirs are directories the layer needed as parents but has no entry for. Their
	// metadata in layerfs is made up (0755, root, extraction time), so the flattener keeps
	// a lower layer's directory as it is, as applying the tar onto the lower layers would.
	ImplicitDirs []string `json:"implicit_dirs,omitempty"`
	// Dropped are the paths of entries not kept (device nodes, see the package policy), also
	// listed in Skipped. In the image such an entry replaces whatever the lower layers have
	// at its path, so the flattener removes that, as for a whiteout. Sorted. Layers
	// extracted before this field existed lack it, and leave the lower entries visible.
	Dropped []string `json:"dropped,omitempty"`
	// Tally counts what layerfs holds once extracted, for checking the store later (nil in
	// layers extracted before it existed).
	Tally *Tally `json:"tally,omitempty"`
}

// MetaFile is the name of the layer description inside a layer's .metadata directory.
const MetaFile = "layer.json"

// WriteMeta writes m as <metaDir>/layer.json.
func WriteMeta(metaDir string, m *Meta) error {
	if err := os.MkdirAll(metaDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", metaDir, err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding layer metadata: %w", err)
	}
	if err := os.WriteFile(filepath.Join(metaDir, MetaFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing layer metadata: %w", err)
	}
	return nil
}

// ReadMeta reads <metaDir>/layer.json.
func ReadMeta(metaDir string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(metaDir, MetaFile))
	if err != nil {
		return nil, fmt.Errorf("reading layer metadata: %w", err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", filepath.Join(metaDir, MetaFile), err)
	}
	return &m, nil
}
