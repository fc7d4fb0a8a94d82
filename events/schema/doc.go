// Package schema derives the JSON Schema of each event type's data from its Go type and
// validates data against the schemas in events.Schemas. It lives apart from package events
// so that programs that only publish and read events do not link two JSON-Schema libraries.
package schema
