package amqpheaders

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
)

// Header types recorded in "header_types".
const (
	TypeInt8         = "int8"
	TypeUint8        = "uint8"
	TypeInt16        = "int16"
	TypeUint16       = "uint16"
	TypeInt32        = "int32"
	TypeUint32       = "uint32"
	TypeInt64        = "int64"
	TypeFloat32      = "float32"
	TypeFloat64      = "float64"
	TypeDecimal      = "decimal"
	TypeTimestamp    = "timestamp"
	TypeBytes        = "bytes"
	TypeStringBase64 = "string-base64"
)

// Properties are the AMQP basic properties, as JSON.
type Properties struct {
	ContentType     string `json:"content_type,omitempty"`
	ContentEncoding string `json:"content_encoding,omitempty"`
	DeliveryMode    uint8  `json:"delivery_mode,omitempty"`
	Priority        uint8  `json:"priority,omitempty"`
	CorrelationID   string `json:"correlation_id,omitempty"`
	ReplyTo         string `json:"reply_to,omitempty"`
	Expiration      string `json:"expiration,omitempty"`
	MessageID       string `json:"message_id,omitempty"`
	// Timestamp is RFC 3339 in UTC, whole seconds (AMQP's resolution).
	Timestamp string `json:"timestamp,omitempty"`
	Type      string `json:"type,omitempty"`
	UserID    string `json:"user_id,omitempty"`
	AppID     string `json:"app_id,omitempty"`
}

type document struct {
	Properties  Properties        `json:"properties"`
	Headers     map[string]any    `json:"headers"`
	HeaderTypes map[string]string `json:"header_types,omitempty"`
	// RawProperties holds, base64, the bytes of each string property that
	// is not valid UTF-8 or holds a NUL (jsonb can not store it):
	// "properties" shows it cleaned, this restores it for a replay.
	RawProperties map[string]string `json:"raw_properties,omitempty"`
	// RawHeaderKeys maps a cleaned top-level header name to the original
	// name's bytes, base64, likewise.
	RawHeaderKeys map[string]string `json:"raw_header_keys,omitempty"`
}

// Encode renders d's properties and headers (see the package documentation).
// It never fails: a value JSON can not hold (NaN, a Go type amqp091 does not
// produce) is written as its string form.
func Encode(d *amqp.Delivery) json.RawMessage {
	doc := document{Headers: make(map[string]any, len(d.Headers))}
	prop := func(name, v string) string {
		if text(v) {
			return v
		}
		if doc.RawProperties == nil {
			doc.RawProperties = map[string]string{}
		}
		doc.RawProperties[name] = base64.StdEncoding.EncodeToString([]byte(v))
		return clean(v)
	}
	doc.Properties = Properties{
		ContentType:     prop("content_type", d.ContentType),
		ContentEncoding: prop("content_encoding", d.ContentEncoding),
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationID:   prop("correlation_id", d.CorrelationId),
		ReplyTo:         prop("reply_to", d.ReplyTo),
		Expiration:      prop("expiration", d.Expiration),
		MessageID:       prop("message_id", d.MessageId),
		Type:            prop("type", d.Type),
		UserID:          prop("user_id", d.UserId),
		AppID:           prop("app_id", d.AppId),
	}
	if !d.Timestamp.IsZero() {
		doc.Properties.Timestamp = d.Timestamp.UTC().Format(time.RFC3339)
	}
	for k, v := range d.Headers {
		j, typ := encodeValue(v, 0)
		key := clean(k)
		if !text(k) {
			// Two names that clean alike stay apart.
			for _, taken := doc.Headers[key]; taken; _, taken = doc.Headers[key] {
				key += "\uFFFD"
			}
			if doc.RawHeaderKeys == nil {
				doc.RawHeaderKeys = map[string]string{}
			}
			doc.RawHeaderKeys[key] = base64.StdEncoding.EncodeToString([]byte(k))
		}
		doc.Headers[key] = j
		if typ != "" {
			if doc.HeaderTypes == nil {
				doc.HeaderTypes = map[string]string{}
			}
			doc.HeaderTypes[key] = typ
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil { // unreachable: encodeValue yields JSON-safe values only
		return json.RawMessage(`{"properties":{},"headers":{}}`)
	}
	return raw
}

// maxDepth bounds the nesting Encode follows; amqp091 itself refuses
// tables nested deeper than 64 levels.
const maxDepth = 100

// encodeValue returns v's JSON form and, for a value whose JSON form loses
// its AMQP type, the type name.
func encodeValue(v any, depth int) (any, string) {
	if depth > maxDepth {
		return "(nested too deep)", ""
	}
	switch v := v.(type) {
	case nil:
		return nil, ""
	case bool:
		return v, ""
	case string:
		if text(v) {
			return v, ""
		}
		if depth > 0 {
			return clean(v), ""
		}
		return base64.StdEncoding.EncodeToString([]byte(v)), TypeStringBase64
	case []byte:
		return base64.StdEncoding.EncodeToString(v), TypeBytes
	case int8:
		return int64(v), TypeInt8
	case uint8:
		return int64(v), TypeUint8
	case int16:
		return int64(v), TypeInt16
	case uint16:
		return int64(v), TypeUint16
	case int32:
		return int64(v), TypeInt32
	case int:
		return int64(v), TypeInt32 // amqp091 writes a Go int as a signed 32-bit 'I'
	case uint32:
		return int64(v), TypeUint32
	case int64:
		return v, TypeInt64
	case float32:
		return float(float64(v)), TypeFloat32
	case float64:
		return float(v), TypeFloat64
	case amqp.Decimal:
		return map[string]any{"scale": v.Scale, "value": v.Value}, TypeDecimal
	case time.Time:
		return v.UTC().Format(time.RFC3339), TypeTimestamp
	case amqp.Table:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[clean(k)], _ = encodeValue(e, depth+1)
		}
		return out, ""
	case map[string]any:
		return encodeValue(amqp.Table(v), depth)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i], _ = encodeValue(e, depth+1)
		}
		return out, ""
	}
	return clean(fmt.Sprintf("%v", v)), ""
}

// float returns f, or its string form when JSON has no number for it.
func float(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return f
}

func clean(s string) string { return deadletter.CleanText(s, 0) }

// text reports whether jsonb stores s as it is.
func text(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// Decode reads what Encode wrote back into a Publishing's properties and
// headers (Body is left empty). It returns an error for JSON of another
// shape or a header whose value does not fit its recorded type.
func Decode(raw json.RawMessage) (amqp.Publishing, error) {
	var doc struct {
		Properties    Properties                 `json:"properties"`
		Headers       map[string]json.RawMessage `json:"headers"`
		HeaderTypes   map[string]string          `json:"header_types"`
		RawProperties map[string]string          `json:"raw_properties"`
		RawHeaderKeys map[string]string          `json:"raw_header_keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return amqp.Publishing{}, fmt.Errorf("amqp headers: %w", err)
	}
	p := doc.Properties
	for name, dst := range map[string]*string{
		"content_type": &p.ContentType, "content_encoding": &p.ContentEncoding, "correlation_id": &p.CorrelationID,
		"reply_to": &p.ReplyTo, "expiration": &p.Expiration, "message_id": &p.MessageID, "type": &p.Type,
		"user_id": &p.UserID, "app_id": &p.AppID,
	} {
		if enc, ok := doc.RawProperties[name]; ok {
			b, err := base64.StdEncoding.DecodeString(enc)
			if err != nil {
				return amqp.Publishing{}, fmt.Errorf("amqp headers: raw property %s: %w", name, err)
			}
			*dst = string(b)
		}
	}
	pub := amqp.Publishing{
		ContentType: p.ContentType, ContentEncoding: p.ContentEncoding, DeliveryMode: p.DeliveryMode,
		Priority: p.Priority, CorrelationId: p.CorrelationID, ReplyTo: p.ReplyTo, Expiration: p.Expiration,
		MessageId: p.MessageID, Type: p.Type, UserId: p.UserID, AppId: p.AppID,
	}
	if p.Timestamp != "" {
		ts, err := time.Parse(time.RFC3339, p.Timestamp)
		if err != nil {
			return amqp.Publishing{}, fmt.Errorf("amqp headers: timestamp: %w", err)
		}
		pub.Timestamp = ts
	}
	if len(doc.Headers) > 0 {
		pub.Headers = make(amqp.Table, len(doc.Headers))
	}
	keys := make([]string, 0, len(doc.Headers))
	for k := range doc.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := decodeTyped(doc.Headers[k], doc.HeaderTypes[k])
		if err != nil {
			return amqp.Publishing{}, fmt.Errorf("amqp headers: header %q: %w", k, err)
		}
		name := k
		if enc, ok := doc.RawHeaderKeys[k]; ok {
			b, err := base64.StdEncoding.DecodeString(enc)
			if err != nil {
				return amqp.Publishing{}, fmt.Errorf("amqp headers: raw name of header %q: %w", k, err)
			}
			name = string(b)
		}
		pub.Headers[name] = v
	}
	return pub, nil
}

func decodeTyped(raw json.RawMessage, typ string) (any, error) {
	switch typ {
	case "":
		return decodeNatural(raw)
	case TypeStringBase64, TypeBytes:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
		if typ == TypeBytes {
			return b, nil
		}
		return string(b), nil
	case TypeTimestamp:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return time.Parse(time.RFC3339, s)
	case TypeDecimal:
		var d struct {
			Scale uint8 `json:"scale"`
			Value int32 `json:"value"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, err
		}
		return amqp.Decimal{Scale: d.Scale, Value: d.Value}, nil
	case TypeFloat32, TypeFloat64:
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return nil, err
			}
			if f, err = strconv.ParseFloat(s, 64); err != nil {
				return nil, err
			}
		}
		if typ == TypeFloat32 {
			return float32(f), nil
		}
		return f, nil
	}
	bits := map[string]int{TypeInt8: 8, TypeUint8: 8, TypeInt16: 16, TypeUint16: 16, TypeInt32: 32, TypeUint32: 32, TypeInt64: 64}[typ]
	if bits == 0 {
		return nil, fmt.Errorf("unknown type %q", typ)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, err
	}
	if strings.HasPrefix(typ, "uint") {
		u, err := strconv.ParseUint(n.String(), 10, bits)
		if err != nil {
			return nil, err
		}
		switch typ {
		case TypeUint8:
			return uint8(u), nil
		case TypeUint16:
			return uint16(u), nil
		}
		return uint32(u), nil
	}
	i, err := strconv.ParseInt(n.String(), 10, bits)
	if err != nil {
		return nil, err
	}
	switch typ {
	case TypeInt8:
		return int8(i), nil
	case TypeInt16:
		return int16(i), nil
	case TypeInt32:
		return int32(i), nil
	}
	return i, nil
}

// decodeNatural maps JSON to AMQP values: objects to tables, arrays to
// arrays, integral numbers to int64, other numbers to float64.
func decodeNatural(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return natural(v), nil
}

func natural(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		t := make(amqp.Table, len(v))
		for k, e := range v {
			t[k] = natural(e)
		}
		return t
	case []any:
		for i, e := range v {
			v[i] = natural(e)
		}
		return v
	}
	return v
}
