package schema_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"flatbed.dev/events"
	"flatbed.dev/events/schema"
)

func TestSchemasAreCurrent(t *testing.T) {
	for typ := range events.Types() {
		want, err := schema.Generate(typ)
		if err != nil {
			t.Fatal(err)
		}
		got, err := events.Schemas.ReadFile("schemas/" + typ + ".json")
		if err != nil {
			t.Fatalf("schemas/%s.json missing: run go generate in events/", typ)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("schemas/%s.json is stale: run go generate in events/", typ)
		}
	}
	if _, err := schema.Generate("no.such"); err == nil {
		t.Error("Generate of an unknown type succeeded")
	}
}

func TestValidate(t *testing.T) {
	good := events.LayerIngested{
		Job: events.Job{WishID: "w", CorrelationID: "c", Image: "http://127.0.0.1:5000/données/x:1", CvmfsRepo: "unpacked.example.org", SubmittedAt: time.Now()},
		Image: events.Image{Registry: "r.example", Repository: "x", Tag: "1", Name: "r.example/x:1", Digest: "sha256:" + strings.Repeat("a", 64),
			MediaType: "application/vnd.oci.image.manifest.v1+json", ConfigDigest: "sha256:" + strings.Repeat("b", 64), LayerCount: 1},
		Layer: events.Layer{Digest: "sha256:" + strings.Repeat("c", 64), DiffID: "sha256:" + strings.Repeat("d", 64),
			MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: 1},
		Path: ".layers/cc/cc/layerfs",
	}
	b, _ := json.Marshal(good)
	if err := schema.Validate(events.LayerIngestedType, b); err != nil {
		t.Errorf("valid data rejected: %v", err)
	}
	if err := schema.Validate(events.LayerIngestedType, []byte(`{"job":{"wish_id":3}}`)); err == nil {
		t.Error("invalid data accepted")
	}
	if err := schema.Validate(events.LayerIngestedType, []byte(`{`)); err == nil {
		t.Error("data that is not JSON accepted")
	}
	if err := schema.Validate("no.such", b); err == nil {
		t.Error("unknown type accepted")
	}
}
