package main

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"flatbed.dev/events"
)

type result struct {
	wishID    string
	completed *events.ConversionCompleted
	failed    *events.ConversionFailed
}

// watchResults follows conversion.completed / conversion.failed of one run (correlation id)
// from now on. It reads only; the stream keeps the events for every other subscriber.
func watchResults(ctx context.Context, js jetstream.JetStream, correlation string) (<-chan result, error) {
	cons, err := js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.Subject(events.ConversionCompletedType), events.Subject(events.ConversionFailedType)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("watching results: %w", err)
	}
	out := make(chan result, 64)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		ev, err := events.Parse(&nats.Msg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		if err != nil || ev.Extensions()[events.ExtCorrelationID] != correlation {
			return
		}
		var r result
		switch events.ShortType(ev) {
		case events.ConversionCompletedType:
			r.completed = &events.ConversionCompleted{}
			err = events.Decode(ev, r.completed)
			r.wishID = r.completed.Job.WishID
		case events.ConversionFailedType:
			r.failed = &events.ConversionFailed{}
			err = events.Decode(ev, r.failed)
			r.wishID = r.failed.Job.WishID
		default:
			return
		}
		if err != nil {
			return
		}
		select {
		case out <- r:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return nil, fmt.Errorf("watching results: %w", err)
	}
	go func() {
		<-ctx.Done()
		cc.Stop()
	}()
	return out, nil
}
