package notification

import (
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	base := Line{FieldImage: "registry.hub.docker.com/library/redis:4"}
	tests := []struct {
		name string
		got  Line
		want Line
	}{
		{"action", base.Action(ActionStartFlatConversion),
			Line{FieldImage: base[FieldImage], FieldAction: "start_flat_conversion"}},
		{"ok", base.Status(nil), Line{FieldImage: base[FieldImage], FieldStatus: "ok"}},
		{"error", base.Status(errors.New("boom")),
			Line{FieldImage: base[FieldImage], FieldStatus: "error", FieldError: "boom"}},
		{"size", base.SizeBytes(1234), Line{FieldImage: base[FieldImage], FieldSizeBytes: "1234"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	if len(base) != 1 {
		t.Errorf("helpers changed the original line: %v", base)
	}
	el := base.Elapsed(time.Now().Add(-1500 * time.Millisecond))[FieldElapsed]
	if s, err := strconv.ParseFloat(el, 64); err != nil || s < 1.5 || !regexp.MustCompile(`^\d+\.\d{6}$`).MatchString(el) {
		t.Errorf("time_elapsed_s = %q", el)
	}
	id := base.WithID()[FieldID]
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("id = %q is not a UUID v4", id)
	}
	if base.WithID()[FieldID] == id {
		t.Error("two ids are equal")
	}
}

func TestParse(t *testing.T) {
	l, err := Parse([]byte(`{"action":"start_ducc","pid":"7"}`))
	if err != nil || l[FieldAction] != ActionStartDucc || l[FieldPID] != "7" {
		t.Errorf("Parse = %v, %v", l, err)
	}
	if _, err := Parse([]byte(`{"size_bytes":12}`)); err == nil {
		t.Error("Parse of a non-string value: no error")
	}
}
