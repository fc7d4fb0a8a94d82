package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

// Wish asks for one image to be converted into the store.
type Wish struct {
	Image        string // [scheme://]registry/repository[:tag][@digest], as in a DUCC wishlist
	CvmfsRepo    string // repository under the store root, e.g. unpacked.cern.ch
	ThinImage    string // where to push the thin image; "" pushes none
	ConvertAgain bool   // convert even when the store holds the image already
	User         string // registry login for pushing the thin image (the wishlist's user)
	SkipPodman   bool   // do not list the image in the repository's podman store
	MultiArch    bool   // convert every linux platform of an index (DUCC's -m), not only the host's

	// Outputs names what the wish asks for (events.OutputUnpacked, OutputThin,
	// OutputRelocated); none means the store and, with ThinImage, the thin image.
	Outputs           []string
	RelocatePrefix    string // with OutputRelocated: the repository prefix, e.g. registry.example.org/mirror
	RelocateNoFlatten bool   // with OutputRelocated: keep the repository hierarchy under the prefix
	ExportRemote      string // with OutputExported: the registry-less remote, dir:///PATH or s3://BUCKET[/PREFIX]?region=&endpoint=
	ExportCompress    string // with OutputExported: "zstd" keeps layers recompressed on the remote

	WishID        string // "" makes a new random one
	CorrelationID string // "" takes the client's (CorrelationID)
}

// PublishWish publishes a wish.submitted event for w once it is valid, returning the wish
// id its result will carry. Publishing the same WishID again within JetStream's duplicate
// window is harmless: the stream keeps the first.
func (c *Client) PublishWish(ctx context.Context, w Wish) (wishID string, err error) {
	id, _, err := c.publish(ctx, w)
	return id, err
}

// publish publishes w and returns its id and stream sequence (the first one's, for a
// duplicate): its result is stored after it.
func (c *Client) publish(ctx context.Context, w Wish) (string, uint64, error) {
	job := events.Job{WishID: w.WishID, CorrelationID: w.CorrelationID, Image: w.Image, CvmfsRepo: w.CvmfsRepo,
		ThinImage: w.ThinImage, SkipThin: w.ThinImage == "", ConvertAgain: w.ConvertAgain, User: w.User,
		SkipPodman: w.SkipPodman, MultiArch: w.MultiArch, Outputs: w.Outputs, RelocatePrefix: w.RelocatePrefix, RelocateNoFlatten: w.RelocateNoFlatten,
		SubmittedAt: time.Now().UTC()}
	job.ExportRemote, job.ExportCompress = w.ExportRemote, w.ExportCompress
	if job.WishID == "" {
		job.WishID = newID()
	}
	if job.CorrelationID == "" {
		job.CorrelationID = c.correlation
	}
	data := events.WishSubmitted{Job: job}
	if err := data.Validate(); err != nil {
		return "", 0, fmt.Errorf("%w: wish for %q: %w", events.ErrInvalid, w.Image, err)
	}
	env, err := events.New(events.WishSubmittedType, c.source, events.ID(events.WishSubmittedType, job.WishID), job, job.Image, data)
	if err != nil {
		return "", 0, err
	}
	m, err := env.Msg(ctx)
	if err != nil {
		return "", 0, err
	}
	ack, err := c.js.PublishMsg(ctx, m, jetstream.WithExpectStream(events.Stream))
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		return "", 0, fmt.Errorf("publishing the wish for %s: %w (no flatbed pipeline has run on this NATS server: start one, e.g. flatbed serve)", job.Image, err)
	}
	if err != nil {
		return "", 0, fmt.Errorf("publishing the wish for %s: %w", job.Image, err)
	}
	return job.WishID, ack.Sequence, nil
}
