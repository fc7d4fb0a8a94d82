package events

//go:generate go run ./internal/genschemas schemas

import "embed"

// Schemas holds schemas/<type>.json, the JSON Schema of each event type's data. Package
// events/schema generates them from the Go types and validates data against them; they are
// kept here, beside the types, so that reading them links no JSON-Schema library.
//
//go:embed schemas/*.json
var Schemas embed.FS
