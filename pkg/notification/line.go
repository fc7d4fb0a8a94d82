package notification

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Line is one notification. Its methods return changed copies, so a start
// line can be reused for its end line:
//
//	l := notification.Line{"image": name}.WithID()
//	f.Write(ctx, l.Action(notification.ActionStartLayerConversion))
//	...
//	f.Write(ctx, l.Action(notification.ActionEndLayerConversion).Elapsed(t0).Status(err))
type Line map[string]string

// With returns a copy of l with key set to value.
func (l Line) With(key, value string) Line {
	c := make(Line, len(l)+1)
	for k, v := range l {
		c[k] = v
	}
	c[key] = value
	return c
}

// Action sets "action".
func (l Line) Action(action string) Line { return l.With(FieldAction, action) }

// WithID sets "id" to a new random UUID.
func (l Line) WithID() Line { return l.With(FieldID, NewID()) }

// Elapsed sets "time_elapsed_s" to the seconds since start.
func (l Line) Elapsed(start time.Time) Line {
	return l.With(FieldElapsed, fmt.Sprintf("%f", time.Since(start).Seconds()))
}

// SizeBytes sets "size_bytes".
func (l Line) SizeBytes(n int64) Line { return l.With(FieldSizeBytes, strconv.FormatInt(n, 10)) }

// Status sets "status" to ok, or to error with "error" set to err's text.
func (l Line) Status(err error) Line {
	if err == nil {
		return l.With(FieldStatus, StatusOK)
	}
	return l.With(FieldStatus, StatusError).With(FieldError, err.Error())
}

// Parse reads one line of a notification file.
func Parse(data []byte) (Line, error) {
	var l Line
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("parsing notification %q: %w", data, err)
	}
	return l, nil
}

// NewID returns a random (version 4) UUID.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
