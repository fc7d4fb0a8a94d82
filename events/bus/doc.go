// Package bus carries flatbed's events over NATS JetStream: an embedded server for the
// zero-set-up mode, stream set-up, publishing, and the durable pull consumers of the stages.
//
// # Why the consumers use nats.go's jetstream package, not a watermill router
//
// The bus used to run its consumers through watermill (v1.5.1) with watermill-nats' beta
// jetstream subscriber (v2.1.3). It did so against watermill's grain, and the middleware that
// would have been the point of it — Retry, PoisonQueue, CorrelationID — does not fit this job:
//
//   - A watermill Message hides the JetStream delivery. A handler here needs it: the delivery
//     count (attempts survive a crash only as the server's NumDelivered) and InProgress
//     heartbeats for layers that take longer than the ack wait. The only way to reach it was
//     to smuggle it from the Unmarshaler to the handler through a map keyed by message UUID
//     (the subscriber overwrites the message's context after unmarshalling).
//   - The subscriber acknowledges after the handler returns, in its own goroutine, with no
//     signal when the ack has reached the server, and the router's Close closes the subscriber
//     while handlers still run: its select between "acked" and "closing" picks one at random.
//     A graceful stop had to drain by hand and then sleep 200 ms, hoping the acks were out;
//     when they were not, the events came again after the ack wait.
//   - middleware.Retry retries in process: the delivery's ack wait keeps running (it would need
//     the heartbeats above), and the count is lost when the process dies. JetStream already
//     redelivers with a back-off and counts attempts durably; that is what the bus uses.
//   - middleware.PoisonQueue re-publishes the failed message as it was. A stage that gives up
//     must end the wish instead: publish image.failed, which the notifier turns into
//     conversion.failed. Only unreadable messages go to a dead-letter stream, with the reason.
//   - middleware.CorrelationID copies a metadata key to the messages a handler returns. Stages
//     publish from inside the handler (one layer.requested per layer) and every event already
//     carries ce-correlationid from its Job.
//   - The router's handlers each wanted a connection of their own, since the subscriber drains
//     the connection it is given when it closes.
//
// Using watermill as intended would have cost a fork of the subscriber (expose the delivery,
// ack synchronously, close after in-flight acks) plus a middleware for each of the rules above,
// to get back what nats.go's jetstream package gives directly: Consume with explicit
// DoubleAck, NakWithDelay, InProgress, and ConsumeContext.Drain/Closed, which let Run and
// Close wait until every handler in flight has returned and its ack is stored. The bus does
// those few things itself (deliver, handle), in one place, with one connection per process.
package bus
