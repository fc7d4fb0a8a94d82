package client_test

import (
	"context"
	"fmt"
	"log"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"flatbed.dev/events/client"
)

// Convert one image with the pipeline that serves a NATS server (events/client/clientexample
// runs this against a pipeline started in-process).
func ExampleClient_Convert() {
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, err := client.New(nc, client.WithSource("example/automation"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	r, err := c.Convert(ctx, client.Wish{Image: "https://registry.hub.docker.com/library/alpine:3.20", CvmfsRepo: "unpacked.example.org"})
	if err != nil {
		log.Fatal(err) // a *client.ConversionError when the pipeline reported a failure
	}
	fmt.Println("converted:", filepath.Join(r.Completed.Repository, r.Completed.PublicPath))
}

// Publish several wishes as one run, then follow that run's results.
func ExampleClient_Follow() {
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c, err := client.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	// Follow first, from now: no result can come before its wish is published.
	results, err := c.Follow(ctx, client.Filter{CorrelationID: c.CorrelationID()})
	if err != nil {
		log.Fatal(err)
	}
	pending := map[string]bool{}
	for _, img := range []string{"https://registry.hub.docker.com/library/alpine:3.20", "https://registry.hub.docker.com/library/busybox:1.37"} {
		id, err := c.PublishWish(ctx, client.Wish{Image: img, CvmfsRepo: "unpacked.example.org"})
		if err != nil {
			log.Fatal(err)
		}
		pending[id] = true
	}
	for r := range results {
		if !pending[r.Job().WishID] {
			continue
		}
		delete(pending, r.Job().WishID)
		if err := r.Err(); err != nil {
			fmt.Println("failed:", err)
		} else {
			fmt.Println("converted:", r.Completed.Job.Image)
		}
		if len(pending) == 0 {
			break
		}
	}
}
