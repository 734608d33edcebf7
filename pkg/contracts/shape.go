package contracts

import (
	"bytes"
	"fmt"

	"github.com/google/uuid"
)

// Shape is a wire shape of an envelope (DESIGN.md §3). [Decode] reads both;
// [Envelope.MarshalShape] writes either.
type Shape int

const (
	// ShapeNested is this module's own shape: the business fields under
	// "data". The default.
	ShapeNested Shape = iota
	// ShapeFlat is the Python messagekit's shape (BaseEvent.to_message()):
	// the business fields beside the envelope fields, no "data" member.
	ShapeFlat
	// ShapeCloudEvents is CloudEvents 1.0 structured-mode JSON, for
	// systems outside the fleet (ADR 0037).
	ShapeCloudEvents
)

// String returns "nested", "flat" or "cloudevents".
func (s Shape) String() string {
	switch s {
	case ShapeNested:
		return "nested"
	case ShapeFlat:
		return "flat"
	case ShapeCloudEvents:
		return "cloudevents"
	}
	return fmt.Sprintf("Shape(%d)", int(s))
}

// ParseShape returns the shape named "nested", "flat" or "cloudevents".
func ParseShape(name string) (Shape, error) {
	switch name {
	case "nested":
		return ShapeNested, nil
	case "flat":
		return ShapeFlat, nil
	case "cloudevents":
		return ShapeCloudEvents, nil
	}
	return 0, fmt.Errorf("unknown event shape %q (want nested, flat or cloudevents)", name)
}

// MarshalShape writes e in shape s: [Envelope.MarshalJSON] for
// [ShapeNested], [Envelope.MarshalFlat] for [ShapeFlat],
// [Envelope.MarshalCloudEvent] for [ShapeCloudEvents]. An unknown shape is
// an error.
func (e Envelope) MarshalShape(s Shape) ([]byte, error) {
	switch s {
	case ShapeNested:
		return e.MarshalJSON()
	case ShapeFlat:
		return e.MarshalFlat()
	case ShapeCloudEvents:
		return e.MarshalCloudEvent()
	}
	return nil, fmt.Errorf("contracts: marshal: unknown %v", s)
}

// pythonTimeLayouts are the layouts pydantic writes a UTC datetime in, in
// JSON mode: six fractional digits, or none when the microseconds are zero.
const (
	pythonTimeLayout      = "2006-01-02T15:04:05.000000Z"
	pythonTimeLayoutWhole = "2006-01-02T15:04:05Z"
)

// MarshalFlat validates e and writes it in the flat shape, byte for byte as
// the Python messagekit's BaseEvent.model_dump_json(by_alias=True) writes the
// same event: eventId, eventType, aggregateId, occurredAt (UTC, "Z", six
// fractional digits unless the microseconds are zero), source, dataVersion,
// correlationId and causationId (null when empty), metadata, then the
// members of data in their order, verbatim.
//
// Besides the [*ValidationError] of [Envelope.Validate], it returns one when
// correlationId or causationId is set but not a UUID (the Python model types
// them UUID | None; they are written in canonical lowercase form), and one
// with Field "data.<key>" when a data member is named like an envelope field
// in either spelling ("data" and "metadata" included), which a reader could
// not tell apart from the envelope's own.
func (e Envelope) MarshalFlat() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	corr, err := pythonUUID("correlationId", e.CorrelationID)
	if err != nil {
		return nil, err
	}
	caus, err := pythonUUID("causationId", e.CausationID)
	if err != nil {
		return nil, err
	}
	meta, data := bytes.TrimSpace(object(e.Metadata)), bytes.TrimSpace(object(e.Data))
	b := make([]byte, 0, 320+len(e.AggregateID)+len(meta)+len(data))
	b = append(b, `{"eventId":"`...)
	b = append(b, e.EventID.String()...)
	b = append(b, `","eventType":`...)
	b = appendString(b, e.EventType)
	b = append(b, `,"aggregateId":`...)
	b = appendString(b, e.AggregateID)
	b = append(b, `,"occurredAt":"`...)
	t := normTime(e.OccurredAt)
	if t.Nanosecond() == 0 {
		b = t.AppendFormat(b, pythonTimeLayoutWhole)
	} else {
		b = t.AppendFormat(b, pythonTimeLayout)
	}
	b = append(b, `","source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"dataVersion":`...)
	b = appendString(b, e.dataVersion())
	b = append(b, `,"correlationId":`...)
	b = appendNullableUUID(b, corr)
	b = append(b, `,"causationId":`...)
	b = appendNullableUUID(b, caus)
	b = append(b, `,"metadata":`...)
	b = append(b, meta...)
	// data is a valid JSON object (Validate): copy its members.
	i := skipSpace(data, 1)
	for i < len(data) && data[i] == '"' {
		kend := stringEnd(data, i)
		if k, known := keyOf(data[i:kend]); known {
			return nil, invalid("data."+fieldNames[k.field][k.spelling], "is an envelope field; the flat shape can not carry it")
		}
		vstart := skipSpace(data, skipSpace(data, kend)+1)
		vend := valueEnd(data, vstart)
		b = append(b, ',')
		b = append(b, data[i:kend]...)
		b = append(b, ':')
		b = append(b, data[vstart:vend]...)
		i = skipSpace(data, vend)
		if i >= len(data) || data[i] != ',' {
			break
		}
		i = skipSpace(data, i+1)
	}
	return append(b, '}'), nil
}

// pythonUUID parses an optional id the Python model types as UUID.
func pythonUUID(field, s string) (*uuid.UUID, *ValidationError) {
	if s == "" {
		return nil, nil
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return nil, invalid(field, "not a UUID: %s; the flat shape's readers (Python messagekit) require one", quote(s))
	}
	return &id, nil
}

func appendNullableUUID(b []byte, id *uuid.UUID) []byte {
	if id == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = append(b, id.String()...)
	return append(b, '"')
}
