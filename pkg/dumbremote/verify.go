package dumbremote

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Report is what Verify found.
type Report struct {
	Blobs      int      // blobs whose content matches their name and sidecar
	Unfinished []string // blobs without a sidecar (a writer stopped before it): the next export finishes them
	References int      // references (refs/ and ids/) to complete images
	Problems   []string // what is wrong: each a blob or a reference and why
	Temporary  int      // half-uploaded temporaries of stopped writers (S3's tmp/), removed by the next export once a day old
}

// Verify checks the whole remote: every blob's content hashes to its name (sidecar or not),
// every sidecar says so, and every reference and id names an image or index whose blobs are
// all there (as they are or recompressed). It reads every blob once. The error is nil when
// there is no problem; Unfinished blobs are not problems.
func (r *Remote) Verify(ctx context.Context) (Report, error) {
	var rep Report
	keys, err := r.b.list(ctx, "blobs/")
	if err != nil {
		return rep, err
	}
	slices.Sort(keys)
	blobs, sidecars := map[string]bool{}, map[string]bool{}
	for _, k := range keys {
		if base, ok := strings.CutSuffix(k, sidecar); ok {
			sidecars[base] = true
		} else {
			blobs[k] = true
		}
	}
	for _, k := range keys {
		if strings.HasSuffix(k, sidecar) {
			if !blobs[strings.TrimSuffix(k, sidecar)] {
				rep.Problems = append(rep.Problems, k+": a checksum without its blob")
			} else if err := r.checkSidecar(ctx, k); err != nil {
				rep.Problems = append(rep.Problems, err.Error())
			}
			continue
		}
		h, err := hashOfKey(k)
		if err != nil {
			rep.Problems = append(rep.Problems, err.Error())
			continue
		}
		if err := r.checkBlob(ctx, h); err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.Problems = append(rep.Problems, err.Error())
			continue
		}
		if sidecars[k] {
			rep.Blobs++
		} else {
			rep.Unfinished = append(rep.Unfinished, k)
		}
	}
	if tmp, err := r.b.list(ctx, "tmp/"); err == nil {
		for _, k := range tmp {
			if k != tmpMarker {
				rep.Temporary++
			}
		}
	}
	for _, dir := range []string{"refs/", "ids/"} {
		refs, err := r.b.list(ctx, dir)
		if err != nil {
			return rep, err
		}
		for _, k := range refs {
			var d v1.Descriptor
			if err := r.readSmall(ctx, k, &d); err != nil {
				rep.Problems = append(rep.Problems, err.Error())
				continue
			}
			if _, err := r.Artifact(ctx, d); err != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s names %s, which is not complete: %v", k, d.Digest, err))
				continue
			}
			rep.References++
		}
	}
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%s: %d problem(s): %s", r, len(rep.Problems), strings.Join(rep.Problems, "; "))
	}
	return rep, nil
}

func hashOfKey(k string) (v1.Hash, error) {
	rest, ok := strings.CutPrefix(k, "blobs/")
	alg, hex, _ := strings.Cut(rest, "/")
	h, err := v1.NewHash(alg + ":" + hex)
	if !ok || err != nil || alg != "sha256" || len(hex) != 64 || !shardOK(hex) {
		return v1.Hash{}, fmt.Errorf("%s: not a blob's name (blobs/sha256/<64 hex>)", k)
	}
	return h, nil
}

func (r *Remote) checkBlob(ctx context.Context, h v1.Hash) error {
	rc, err := r.OpenBlob(ctx, h, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return fmt.Errorf("%s: %w", blobKey(h), err)
	}
	return nil
}

func (r *Remote) checkSidecar(ctx context.Context, k string) error {
	h, err := hashOfKey(strings.TrimSuffix(k, sidecar))
	if err != nil {
		return err
	}
	rc, err := r.b.get(ctx, k)
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1024))
	if err != nil {
		return err
	}
	if string(b) != string(sidecarLine(h)) {
		return fmt.Errorf("%s: says %q, not the blob's digest", k, strings.TrimSpace(string(b)))
	}
	return nil
}
