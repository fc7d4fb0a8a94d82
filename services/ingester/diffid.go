package ingester

import (
	"errors"
	"fmt"
	"io/fs"

	"flatbed.dev/events"
	"flatbed.dev/pkg/layer"
	"flatbed.dev/pkg/store"
)

// sameDiffID checks that the layer the store holds under l's digest has the uncompressed
// digest the image's config names for it. The blob's digest decides what is stored, so a
// mismatch means the image's config lies about its layers: no attempt can mend it.
func sameDiffID(st *store.Store, l events.Layer, image string) error {
	m, err := layer.ReadMeta(st.LayerMeta(l.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a store written before layer metadata existed: nothing to compare
	}
	if err != nil {
		return fmt.Errorf("reading the stored metadata of layer %s: %w", l.Digest, err)
	}
	if m.DiffID != "" && m.DiffID != l.DiffID {
		return fmt.Errorf("image %s says layer %s unpacks to %s, but that blob unpacks to %s (checked when it was stored): the image's config does not match its layers; fix the image",
			image, l.Digest, l.DiffID, m.DiffID)
	}
	return nil
}
