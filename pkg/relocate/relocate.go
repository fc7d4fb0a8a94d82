package relocate

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"flatbed.dev/pkg/imageref"
)

// Move is one image to relocate.
type Move struct {
	Original string       // as the user or the bundle wrote it: the Mapping's key
	Source   imageref.Ref // Original parsed, pinned to a digest when one is known
	Target   imageref.Ref // the relocated name: tag and digest of Original kept
}

// Plan names each image (docker names, see ParseImage) with name, once each, and refuses a
// plan in which two repositories would be relocated into one.
func Plan(name Namer, images []string) ([]Move, error) {
	var moves []Move
	seen := map[string]bool{}
	for _, s := range images {
		if seen[s] {
			continue
		}
		seen[s] = true
		m, err := newMove(name, s, "")
		if err != nil {
			return nil, err
		}
		moves = append(moves, m)
	}
	return moves, checkOneToOne(moves)
}

// newMove plans original; pin is a digest known for it (a bundle's contentDigest), used
// when original has none.
func newMove(name Namer, original, pin string) (Move, error) {
	src, err := ParseImage(original)
	if err != nil {
		return Move{}, err
	}
	target, err := name(src)
	if err != nil {
		return Move{}, err
	}
	switch {
	case pin == "" || src.Digest == pin:
	case src.Digest == "":
		src.Digest = pin
	default:
		return Move{}, fmt.Errorf("image %s is pinned to %s but its content digest is given as %s", original, src.Digest, pin)
	}
	return Move{Original: original, Source: src, Target: target}, nil
}

// checkOneToOne fails when two source repositories share a target repository: Prefix.Nested
// does that to one path on two registries.
func checkOneToOne(moves []Move) error {
	from := map[string]string{}
	for _, m := range moves {
		host, path := dockerName(m.Source)
		src, dst := host+"/"+path, m.Target.Registry+"/"+m.Target.Repository
		if prev, ok := from[dst]; ok && prev != src {
			return fmt.Errorf("%s and %s would both be relocated to %s; relocate them flat (without --no-flatten) or separately", prev, src, dst)
		}
		from[dst] = src
	}
	return nil
}

// Relocate copies every image (see Plan and Copy) and returns the mapping of those copied.
// It goes on after an image fails and returns all failures joined, each naming its image.
func Relocate(ctx context.Context, name Namer, images []string, opts ...Option) (Mapping, error) {
	moves, err := Plan(name, images)
	if err != nil {
		return nil, err
	}
	m, _, err := copyAll(ctx, moves, opts)
	return m, err
}

// copyAll copies moves in order and returns the mapping and, per move, the digest copied
// (zero for a move that failed).
func copyAll(ctx context.Context, moves []Move, opts []Option) (Mapping, []v1.Hash, error) {
	m := Mapping{}
	digests := make([]v1.Hash, len(moves))
	var errs []error
	for i, mv := range moves {
		d, err := Copy(ctx, mv.Source, mv.Target, opts...)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		digests[i] = d
		t := mv.Target
		t.Digest = d.String()
		m[mv.Original] = dockerString(t)
	}
	return m, digests, errors.Join(errs...)
}
