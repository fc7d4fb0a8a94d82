package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/invopop/jsonschema"
	sjs "github.com/santhosh-tekuri/jsonschema/v6"

	"flatbed.dev/events"
)

// Generate derives the JSON Schema of type t's data from its Go type. The files in
// events/schemas/ are its output (go generate in events/); a test keeps them in step.
func Generate(t string) ([]byte, error) {
	v, ok := events.Types()[t]
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", t)
	}
	r := &jsonschema.Reflector{DoNotReference: false, ExpandedStruct: true}
	s := r.Reflect(v)
	s.ID = jsonschema.ID(events.SchemaURL(t))
	s.Title = "flatbed " + t + " event data"
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// compile reads and compiles every schema in events.Schemas, once.
var compile = sync.OnceValues(func() (map[string]*sjs.Schema, error) {
	c := sjs.NewCompiler()
	for typ := range events.Types() {
		b, err := events.Schemas.ReadFile("schemas/" + typ + ".json")
		if err != nil {
			return nil, err
		}
		doc, err := sjs.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", typ, err)
		}
		if err := c.AddResource(events.SchemaURL(typ), doc); err != nil {
			return nil, err
		}
	}
	compiled := map[string]*sjs.Schema{}
	for typ := range events.Types() {
		s, err := c.Compile(events.SchemaURL(typ))
		if err != nil {
			return nil, fmt.Errorf("compiling schema %s: %w", typ, err)
		}
		compiled[typ] = s
	}
	return compiled, nil
})

// Validate checks data against the schema of event type t.
func Validate(t string, data []byte) error {
	compiled, err := compile()
	if err != nil {
		return err
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
