// Package frontdoor is the pipeline's HTTP front door: a REST API to create, list and delete
// wishes and to read the state and history of every image the pipeline has seen, the
// registry webhooks (the distribution registry's notifications, Harbor's default and
// CloudEvents payloads) that turn a pushed image into a wish, and an OpenAPI description of
// all of it. Wishes and image states live in JetStream KV buckets (with history), so any
// replica answers and a restart of every process loses nothing; the states follow the
// pipeline's events through a durable consumer.
package frontdoor
