// Package clientexample shows a downstream program converting an image with
// flatbed.dev/events/client alone, against a pipeline started in the same process (go test
// runs it). It is a module of its own so that the services it starts are no dependency of
// flatbed.dev/events.
package clientexample
