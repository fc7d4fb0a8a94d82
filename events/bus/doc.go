// Package bus carries flatbed's events over NATS JetStream: an embedded server for the
// zero-set-up mode, stream set-up, publishing, and durable consumers run by a watermill router.
package bus
