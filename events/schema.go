package events

//go:generate go run ./internal/genschemas schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/invopop/jsonschema"
	sjs "github.com/santhosh-tekuri/jsonschema/v6"
)

// Schemas holds schemas/<type>.json, the JSON Schema of each event type's data.
//
//go:embed schemas/*.json
var Schemas embed.FS

// GenerateSchema derives the JSON Schema of type t's data from its Go type. The files in
// schemas/ are its output (go generate); a test keeps them in step.
func GenerateSchema(t string) ([]byte, error) {
	v, ok := Types()[t]
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", t)
	}
	r := &jsonschema.Reflector{DoNotReference: false, ExpandedStruct: true}
	s := r.Reflect(v)
	s.ID = jsonschema.ID(SchemaURL(t))
	s.Title = "flatbed " + t + " event data"
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

var (
	compiled     map[string]*sjs.Schema
	compileOnce  sync.Once
	compileError error
)

// ValidateData checks data against the schema of event type t.
func ValidateData(t string, data []byte) error {
	compileOnce.Do(func() {
		c := sjs.NewCompiler()
		compiled = map[string]*sjs.Schema{}
		for typ := range Types() {
			b, err := Schemas.ReadFile("schemas/" + typ + ".json")
			if err != nil {
				compileError = err
				return
			}
			doc, err := sjs.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				compileError = fmt.Errorf("schema %s: %w", typ, err)
				return
			}
			if err := c.AddResource(SchemaURL(typ), doc); err != nil {
				compileError = err
				return
			}
		}
		for typ := range Types() {
			s, err := c.Compile(SchemaURL(typ))
			if err != nil {
				compileError = fmt.Errorf("compiling schema %s: %w", typ, err)
				return
			}
			compiled[typ] = s
		}
	})
	if compileError != nil {
		return compileError
	}
	s, ok := compiled[t]
	if !ok {
		return fmt.Errorf("no schema for event type %q", t)
	}
	doc, err := sjs.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s data is not JSON: %w", t, err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("%s data does not match its schema: %w", t, err)
	}
	return nil
}
