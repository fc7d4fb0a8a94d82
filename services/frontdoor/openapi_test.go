package frontdoor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	sjs "github.com/santhosh-tekuri/jsonschema/v6"
)

const docURL = "https://flatbed.dev/frontdoor/openapi.json"

type openAPIDoc struct {
	raw      map[string]any
	compiler *sjs.Compiler
	mu       sync.Mutex
	schemas  map[string]*sjs.Schema
}

var loadDoc = sync.OnceValues(func() (*openAPIDoc, error) {
	var raw map[string]any
	if err := json.Unmarshal(OpenAPI, &raw); err != nil {
		return nil, err
	}
	doc, err := sjs.UnmarshalJSON(bytes.NewReader(OpenAPI))
	if err != nil {
		return nil, err
	}
	c := sjs.NewCompiler()
	c.DefaultDraft(sjs.Draft2020)
	if err := c.AddResource(docURL, doc); err != nil {
		return nil, err
	}
	return &openAPIDoc{raw: raw, compiler: c, schemas: map[string]*sjs.Schema{}}, nil
})

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// at follows a JSON pointer in the raw document.
func (d *openAPIDoc) at(ptr string) (any, bool) {
	var cur any = d.raw
	for _, part := range strings.Split(strings.TrimPrefix(ptr, "#/"), "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// template is the documented path that path (with ids filled in) is an instance of.
func (d *openAPIDoc) template(path string) (string, bool) {
	paths, _ := d.raw["paths"].(map[string]any)
	segs := strings.Split(path, "/")
	for tmpl := range paths {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		ok := true
		for i := range ts {
			if ts[i] != segs[i] && !(strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}")) {
				ok = false
				break
			}
		}
		if ok {
			return tmpl, true
		}
	}
	return "", false
}

// checkAnswer fails the test unless the answer (status, content type, body) to method path
// is one the OpenAPI document describes, its JSON body valid against the schema given.
func checkAnswer(t *testing.T, method, path string, code int, contentType string, body []byte) {
	t.Helper()
	d, err := loadDoc()
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	tmpl, ok := d.template(strings.SplitN(path, "?", 2)[0])
	if !ok {
		t.Errorf("%s %s: no path of openapi.json matches", method, path)
		return
	}
	ptr := "#/paths/" + pointerEscape(tmpl) + "/" + strings.ToLower(method) + "/responses/" + strconv.Itoa(code)
	resp, ok := d.at(ptr)
	if !ok {
		t.Errorf("%s %s answered %d, which openapi.json does not describe (%s): %s", method, path, code, ptr, body)
		return
	}
	if ref, ok := resp.(map[string]any)["$ref"].(string); ok {
		ptr = ref
		resp, _ = d.at(ref)
	}
	content, _ := resp.(map[string]any)["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			t.Errorf("%s %s %d: openapi.json describes no body, got %s", method, path, code, body)
		}
		return
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if _, ok := content[mt]; !ok {
		t.Errorf("%s %s %d: content type %q is not one openapi.json describes", method, path, code, contentType)
		return
	}
	if mt != "application/json" {
		return
	}
	loc := docURL + ptr + "/content/" + pointerEscape(mt) + "/schema"
	d.mu.Lock()
	s, ok := d.schemas[loc]
	if !ok {
		s, err = d.compiler.Compile(loc)
		if err != nil {
			d.mu.Unlock()
			t.Fatalf("compiling %s: %v", loc, err)
		}
		d.schemas[loc] = s
	}
	d.mu.Unlock()
	v, err := sjs.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Errorf("%s %s %d: not JSON: %v", method, path, code, err)
		return
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%s %s %d: the answer does not match openapi.json: %v\n%s", method, path, code, err, body)
	}
}

// The OpenAPI document describes exactly the routes the front door has; the answers of
// every test are checked against it (door.call).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	d, err := loadDoc()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := d.raw["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("openapi %q: want an OpenAPI 3 document", v)
	}
	var documented []string
	paths, _ := d.raw["paths"].(map[string]any)
	for p, item := range paths {
		for m := range item.(map[string]any) {
			if slices.Contains([]string{"get", "put", "post", "delete", "patch", "head", "options"}, m) {
				documented = append(documented, strings.ToUpper(m)+" "+p)
			}
		}
	}
	s := &Service{}
	var served []string
	for _, r := range s.Routes() {
		served = append(served, r.Method+" "+r.Path)
		op, ok := d.at("#/paths/" + pointerEscape(r.Path) + "/" + strings.ToLower(r.Method))
		if !ok {
			continue
		}
		sec, has := op.(map[string]any)["security"].([]any)
		if open := has && len(sec) == 0; open == r.Auth {
			t.Errorf("%s %s: needs the token: %v, but openapi.json says security %v", r.Method, r.Path, r.Auth, sec)
		}
	}
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("openapi.json and the routes differ:\ndocumented %q\nserved     %q", documented, served)
	}
	// Every schema compiles.
	for name := range d.raw["components"].(map[string]any)["schemas"].(map[string]any) {
		if _, err := d.compiler.Compile(docURL + "#/components/schemas/" + name); err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}
	// The checker itself refuses what the document does not allow.
	if err := validateAgainst(d, "#/components/schemas/Image", []byte(`{"id":"x","state":"sleeping"}`)); err == nil {
		t.Error("an Image with an unknown state validated")
	}
}

func validateAgainst(d *openAPIDoc, ptr string, body []byte) error {
	s, err := d.compiler.Compile(docURL + ptr)
	if err != nil {
		return err
	}
	v, err := sjs.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("%w", err)
	}
	return nil
}
