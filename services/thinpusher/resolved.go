package thinpusher

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"flatbed.dev/events"
	"flatbed.dev/events/bus"
	"flatbed.dev/pkg/imageref"
	"flatbed.dev/pkg/registry"
	"flatbed.dev/pkg/store"
)

// handleResolved gives an image the store already holds (image.resolved with
// AlreadyConverted: nothing is unpacked or flattened, so no image.flattened follows) the thin
// image its wish asks for: a wishlist whose output_format changed gets its new thin images
// without converting anything again. The target is asked first (one HEAD): a thin image is
// deterministic, so when the target already names the digest this one would have, nothing is
// pushed. The wish ends with the thin.pushed published here (the notifier waits for it).
// The resolver keeps the image's description available for this (from the store's
// .metadata when the object store lost it).
func (s *Service) handleResolved(ctx context.Context, d *bus.Delivery) error {
	var in events.ImageResolved
	if err := d.Decode(&in); err != nil {
		return err
	}
	if !in.AlreadyConverted || !in.Job.PushesThin() {
		return nil // converted now: its image.flattened brings it; or no thin image is wanted
	}
	start := time.Now()
	var digest string
	var pushed bool
	var err error
	if len(in.Platforms) > 0 {
		digest, pushed, err = s.pushList(ctx, in.Job, in.Platforms, true) // a multi-arch image: its manifest list (list.go)
	} else {
		var img v1.Image
		var out imageref.Ref
		var dst name.Reference
		if img, out, dst, err = s.thinImage(ctx, in.Job, in.Image); err == nil {
			digest, pushed, err = s.write(ctx, in.Job, img, out, dst, true)
		}
	}
	if err != nil {
		s.Metrics.failed(err, d.LastAttempt())
		return err
	}
	flat := store.New(".").FlatDir(in.Image.ConfigDigest) // relative to the repository
	res := events.ThinPushed{Job: in.Job, Image: in.Image, FlatPath: filepath.ToSlash(flat), PublicPath: in.Image.Name,
		ThinImage: in.Job.ThinImage, ThinDigest: digest, AlreadyConverted: true, Seconds: time.Since(start).Seconds()}
	return s.publish(ctx, res, pushedOrPresent(pushed))
}

// held says dst already names img (by digest), from one HEAD of dst. Anything else (not
// there, another image, the HEAD refused or failing) says no: the push that follows reports
// what is wrong.
func (s *Service) held(ctx context.Context, opts []registry.Option, img v1.Image, dst name.Reference) (string, bool) {
	want, err := img.Digest()
	if err != nil {
		return "", false
	}
	var got v1.Hash
	err = registry.Do(ctx, opts, func(ro []remote.Option) error {
		desc, err := remote.Head(dst, ro...)
		if err == nil {
			got = desc.Digest
		}
		return err
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) && !registry.NotFound(err) {
			s.Log.Debug("cannot tell whether the thin image is in place; pushing it", "thin", dst.String(), "err", registry.Explain(err))
		}
		return "", false
	}
	return want.String(), got == want
}
