package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	natsce "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
)

// Extension attribute names (CloudEvents allows only [a-z0-9]).
const (
	ExtWishID        = "wishid"
	ExtCorrelationID = "correlationid"
)

// Envelope is one event ready for the bus: the CloudEvent plus the subject it travels on.
type Envelope struct {
	Type    string // short type, e.g. WishSubmittedType
	ID      string // CloudEvents id; also Nats-Msg-Id, so re-publishes are dropped by JetStream
	Subject string // NATS subject
	Event   event.Event
}

// New builds the CloudEvent for data of type t, published by source (e.g. "flatbed/resolver").
// id must be stable for the same logical event (derive it from the wish and digests) so a
// handler that runs twice publishes a duplicate JetStream drops.
func New(t, source, id string, job Job, subject string, data any) (*Envelope, error) {
	ev := event.New()
	ev.SetID(id)
	ev.SetType(CEType(t))
	ev.SetSource(source)
	ev.SetTime(time.Now().UTC())
	ev.SetDataSchema(SchemaURL(t))
	if subject != "" {
		ev.SetSubject(subject)
	}
	if job.WishID != "" {
		ev.SetExtension(ExtWishID, job.WishID)
	}
	if job.CorrelationID != "" {
		ev.SetExtension(ExtCorrelationID, job.CorrelationID)
	}
	if err := ev.SetData(event.ApplicationJSON, data); err != nil {
		return nil, fmt.Errorf("encoding %s data: %w", t, err)
	}
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("invalid %s event: %w", t, err)
	}
	return &Envelope{Type: t, ID: id, Subject: Subject(t), Event: ev}, nil
}

// Headers returns the NATS message of the envelope in CloudEvents binary mode: attributes as
// "ce-" headers, the JSON data as the body, and Nats-Msg-Id = the event id.
func (e *Envelope) Msg(ctx context.Context) (*nats.Msg, error) {
	var body bytes.Buffer
	hdr, err := natsce.WriteMsg(ctx, binding.ToMessage(&e.Event), &body)
	if err != nil {
		return nil, fmt.Errorf("writing %s as a NATS message: %w", e.Type, err)
	}
	out := nats.Header{}
	for k, v := range hdr {
		for _, s := range v {
			// The SDK writes header values raw; CloudEvents' NATS binding wants non-ASCII
			// percent-encoded so every NATS client can read them.
			out.Add(k, percentEncode(s))
		}
	}
	out.Set(nats.MsgIdHdr, e.ID)
	return &nats.Msg{Subject: e.Subject, Header: out, Data: body.Bytes()}, nil
}

// Parse reads a CloudEvent back from a NATS message (binary mode).
func Parse(m *nats.Msg) (*event.Event, error) {
	hdr := nats.Header{}
	for k, v := range m.Header {
		for _, s := range v {
			if strings.HasPrefix(k, "ce-") {
				if d, err := url.PathUnescape(s); err == nil {
					s = d
				}
			}
			hdr.Add(k, s)
		}
	}
	ev, err := binding.ToEvent(context.Background(), natsce.NewMessage(&nats.Msg{Subject: m.Subject, Header: hdr, Data: m.Data}))
	if err != nil {
		return nil, fmt.Errorf("reading CloudEvent from %s: %w", m.Subject, err)
	}
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("invalid CloudEvent on %s: %w", m.Subject, err)
	}
	return ev, nil
}

// ShortType returns the flatbed type of a CloudEvent ("" if it is not one of ours).
func ShortType(ev *event.Event) string {
	t, ok := strings.CutPrefix(ev.Type(), TypePrefix)
	if !ok {
		return ""
	}
	return t
}

// Decode unmarshals the event's JSON data into v.
func Decode(ev *event.Event, v any) error {
	if err := json.Unmarshal(ev.Data(), v); err != nil {
		return fmt.Errorf("decoding %s data: %w", ev.Type(), err)
	}
	return nil
}

func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
