// Package client is what a program outside flatbed needs to ask for conversions and learn
// their results: publish a wish, follow conversion.completed and conversion.failed, or both
// at once (Convert), over the NATS JetStream a flatbed pipeline runs on.
//
// It reuses package events for the event types and their CloudEvents form (events.New,
// Envelope.Msg, events.Parse) and validates what it publishes and what it reads with the
// types' Validate methods. It links nats.go and the CloudEvents SDK, nothing more: not
// nats-server, watermill, Prometheus or a JSON-Schema library (a test checks), which stay
// with events/bus, the services and events/schema.
//
// It is a package of the events module, not a module of its own: what a program links is
// decided by the packages it imports, not by the modules it requires, and a separate module
// would still require flatbed.dev/events for the types, so its go.mod would bring the same
// requirements into the program's module graph.
package client
