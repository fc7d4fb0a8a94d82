package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
	"flatbed.dev/events/client"
)

// server starts a NATS server with JetStream, with the pipeline's stream when stream is true
// (as bus.EnsureStreams makes it, in what the client relies on), and returns a connection.
func server(t *testing.T, stream bool) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if stream {
		_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: events.Stream, Subjects: []string{events.Prefix + ">"},
			Duplicates: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
	}
	return nc, js
}

func newClient(t *testing.T, nc *nats.Conn, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(nc, append([]client.Option{client.WithPollInterval(20 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// resultFor publishes what the notifier would for job: conversion.completed, or
// conversion.failed when reason is not "".
func resultFor(t *testing.T, js jetstream.JetStream, job events.Job, reason string) {
	t.Helper()
	typ, data := events.ConversionCompletedType, any(events.ConversionCompleted{Job: job, Image: image(job), Repository: "/store/" + job.CvmfsRepo,
		FlatPath: ".flat/bb/" + strings.Repeat("b", 64), PublicPath: image(job).Name})
	if reason != "" {
		typ, data = events.ConversionFailedType, events.ConversionFailed{Job: job, Stage: "resolver", Error: reason}
	}
	env, err := events.New(typ, "flatbed/notifier", events.ID(typ, job.WishID), job, job.Image, data)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, env)
}

func publish(t *testing.T, js jetstream.JetStream, env *events.Envelope) {
	t.Helper()
	m, err := env.Msg(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// image is a resolved image for the job's image, which the tests write as registry/repository:tag.
func image(job events.Job) events.Image {
	name := job.Image
	reg, rest, _ := strings.Cut(name, "/")
	repo, tag, _ := strings.Cut(rest, ":")
	return events.Image{Registry: reg, Repository: repo, Tag: tag, Name: name, Digest: "sha256:" + strings.Repeat("a", 64),
		MediaType: "application/vnd.oci.image.manifest.v1+json", ConfigDigest: "sha256:" + strings.Repeat("b", 64), LayerCount: 1}
}

func job(wish, correlation, image string) events.Job {
	return events.Job{WishID: wish, CorrelationID: correlation, Image: image, CvmfsRepo: "unpacked.example.org", SkipThin: true}
}
