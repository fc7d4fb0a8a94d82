package layer

import "fmt"

// droppedBytesMax bounds the paths listed in Meta.Dropped (fixed): a layer of millions of
// device nodes with long names must not blow up the metadata. Real layers drop a few dozen.
const droppedBytesMax = 16 << 20

// drop handles an entry that is not kept at rel (a device node, see node). In the image it
// replaces whatever is at rel, in this layer or below: what this layer put there is removed
// now, and rel is listed in Meta.Dropped so the flattener removes the lower layers' entry as
// for a whiteout. The entry is recorded as skipped, with reason.
func (x *extractor) drop(pfd int, base, rel, reason string) error {
	if err := x.replace(pfd, base, rel); err != nil {
		return fmt.Errorf("replacing: %w", err)
	}
	x.skip(rel, reason)
	if _, ok := x.dropped[rel]; ok {
		return nil
	}
	if x.droppedBytes += len(rel); x.droppedBytes > droppedBytesMax {
		return fmt.Errorf("%w: the paths of the entries not kept (devices) add up to more than %d bytes (fixed)", ErrLimit, droppedBytesMax)
	}
	x.dropped[rel] = struct{}{}
	return nil
}

// undrop forgets rel and its parents as dropped: this layer makes an entry there (parents as
// directories), and in a tar the last entry for a name wins.
func (x *extractor) undrop(rel string) {
	for p := rel; p != "" && len(x.dropped) > 0; p, _ = splitRel(p) {
		if _, ok := x.dropped[p]; ok {
			delete(x.dropped, p)
			x.droppedBytes -= len(p)
		}
	}
}
