package contracts

import (
	"bytes"
	"encoding/json"
	"strings"
)

// CloudEventsSpecVersion is the CloudEvents version read and written.
const CloudEventsSpecVersion = "1.0"

// CloudEvents attributes (structured-mode JSON) and the envelope fields they
// map to (ADR 0037). Extension attributes carry the fields CloudEvents has
// no attribute for; their names are lowercase, as the specification wants.
const (
	ceSpecVersion   = iota
	ceID            // eventId
	ceType          // eventType
	ceSource        // source
	ceTime          // occurredAt
	ceSubject       // aggregateId
	ceDataVersion   // dataVersion (extension)
	ceCorrelationID // correlationId (extension)
	ceCausationID   // causationId (extension)
	ceMetadata      // metadata, a JSON object in a string (extension)
	ceContentType   // datacontenttype
	ceData          // data
	ceDataBase64    // data_base64: refused
	numCE
)

var ceNames = [numCE]string{"specversion", "id", "type", "source", "time", "subject", "dataversion",
	"correlationid", "causationid", "metadata", "datacontenttype", "data", "data_base64"}

// cloudEvent holds the raw values of a structured-mode CloudEvent's
// attributes; nil when absent.
type cloudEvent [numCE][]byte

// readCloudEvent collects the attributes of the valid JSON object at
// b[start]; ok is false when it has no specversion member, i.e. is not a
// CloudEvent. dup is the error for a repeated attribute.
func readCloudEvent(b []byte, start int) (ce cloudEvent, ok bool, dup *ValidationError) {
	i := skipSpace(b, start+1)
	for i < len(b) && b[i] == '"' {
		kend := stringEnd(b, i)
		vstart := skipSpace(b, skipSpace(b, kend)+1)
		vend := valueEnd(b, vstart)
		name := b[i+1 : kend-1]
		if !isPlainKey(name) {
			var s string
			if json.Unmarshal(b[i:kend], &s) == nil {
				name = []byte(s)
			}
		}
		for a, n := range ceNames {
			if string(name) == n {
				if ce[a] != nil && dup == nil {
					dup = invalid(n, "duplicate key %q", n)
				}
				ce[a] = b[vstart:vend]
			}
		}
		i = skipSpace(b, vend)
		if i >= len(b) || b[i] != ',' {
			break
		}
		i = skipSpace(b, i+1)
	}
	return ce, ce[ceSpecVersion] != nil, dup
}

func isPlainKey(k []byte) bool {
	for _, c := range k {
		if c == '\\' {
			return false
		}
	}
	return true
}

// envelope maps the CloudEvent to an envelope and validates it.
func (ce *cloudEvent) envelope(alias bool) (Envelope, error) {
	text := func(a int, required bool) (string, *ValidationError) {
		raw := ce[a]
		if raw == nil {
			if required {
				return "", invalid(ceNames[a], "required")
			}
			return "", nil
		}
		s, ok, err := parseString(ceNames[a], raw)
		if err == nil && !ok && required {
			err = invalid(ceNames[a], "required")
		}
		return s, err
	}
	spec, err := text(ceSpecVersion, true)
	if err != nil {
		return Envelope{}, err
	}
	if spec != CloudEventsSpecVersion {
		return Envelope{}, invalid("specversion", "%s is not %q", quote(spec), CloudEventsSpecVersion)
	}
	var e Envelope
	if ce[ceID] == nil {
		return Envelope{}, invalid("id", "required")
	}
	var ok bool
	if e.EventID, ok, err = parseUUID("id", ce[ceID], "", false); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("id", "required")
	}
	if e.EventType, err = text(ceType, true); err != nil {
		return Envelope{}, err
	}
	if e.Source, err = text(ceSource, true); err != nil {
		return Envelope{}, err
	}
	if ce[ceTime] == nil {
		return Envelope{}, invalid("time", "required")
	}
	if e.OccurredAt, ok, err = parseTime("time", ce[ceTime], "", false); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("time", "required")
	}
	if e.AggregateID, err = text(ceSubject, true); err != nil {
		return Envelope{}, err
	}
	if e.DataVersion, err = text(ceDataVersion, false); err != nil {
		return Envelope{}, err
	}
	if e.DataVersion == "" {
		e.DataVersion = DefaultDataVersion
	}
	if e.CorrelationID, err = text(ceCorrelationID, false); err != nil {
		return Envelope{}, err
	}
	if e.CausationID, err = text(ceCausationID, false); err != nil {
		return Envelope{}, err
	}
	ct, err := text(ceContentType, false)
	if err != nil {
		return Envelope{}, err
	}
	if ct != "" && !isJSONContentType(ct) {
		return Envelope{}, invalid("datacontenttype", "%s is not JSON", quote(ct))
	}
	if ce[ceDataBase64] != nil {
		return Envelope{}, invalid("data_base64", "binary data is not supported: data must be a JSON object")
	}
	data, err := objectValue("data", ce[ceData])
	if err != nil {
		return Envelope{}, err
	}
	metaText, err := text(ceMetadata, false)
	if err != nil {
		return Envelope{}, err
	}
	var meta []byte
	if metaText != "" {
		if err := validateObject("metadata", json.RawMessage(metaText)); err != nil {
			return Envelope{}, err
		}
		meta = []byte(metaText)
	}
	if err := e.validateFields(); err != nil {
		return Envelope{}, err
	}
	if meta != nil {
		// Decoded from a string: never part of the input, so never aliased.
		e.Metadata = meta[:len(meta):len(meta)]
		_, e.Data = objects(nil, data, alias)
		return e, nil
	}
	e.Metadata, e.Data = objects(nil, data, alias)
	return e, nil
}

func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// MarshalCloudEvent validates e and writes it as a CloudEvents 1.0
// structured-mode JSON event: specversion "1.0", id = eventId, source,
// type = eventType, subject = aggregateId, time = occurredAt in
// [TimeLayout], datacontenttype "application/json", the extension
// attributes dataversion, correlationid and causationid (the last two
// omitted when empty) and metadata (its JSON object as a string, omitted
// when empty), then data verbatim. [Decode] reads it back to an equal
// envelope. It returns the [*ValidationError] of [Envelope.Validate].
func (e Envelope) MarshalCloudEvent() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	meta, data := bytes.TrimSpace(object(e.Metadata)), bytes.TrimSpace(object(e.Data))
	b := make([]byte, 0, 320+len(e.AggregateID)+2*len(meta)+len(data))
	b = append(b, `{"specversion":"1.0","id":"`...)
	b = append(b, e.EventID.String()...)
	b = append(b, `","source":`...)
	b = appendString(b, e.Source)
	b = append(b, `,"type":`...)
	b = appendString(b, e.EventType)
	b = append(b, `,"subject":`...)
	b = appendString(b, e.AggregateID)
	b = append(b, `,"time":"`...)
	b = normTime(e.OccurredAt).AppendFormat(b, TimeLayout)
	b = append(b, `","datacontenttype":"application/json","dataversion":`...)
	b = appendString(b, e.dataVersion())
	if e.CorrelationID != "" {
		b = append(b, `,"correlationid":`...)
		b = appendString(b, e.CorrelationID)
	}
	if e.CausationID != "" {
		b = append(b, `,"causationid":`...)
		b = appendString(b, e.CausationID)
	}
	if string(meta) != "{}" {
		b = append(b, `,"metadata":`...)
		b = appendString(b, string(meta))
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}'), nil
}
