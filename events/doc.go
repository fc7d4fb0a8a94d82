// Package events is flatbed's contract: the event types every service publishes or consumes,
// their NATS subjects and stream, and their CloudEvents form.
package events
