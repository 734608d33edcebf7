package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// This file freezes the decoder as it was before the single-pass scanner:
// tooDeep, json.Valid and a splitter, then regexps for the patterns. It is
// the oracle of the differential tests and the baseline of the benchmarks;
// do not change it to follow Decode.

var (
	refEventTypeRE = regexp.MustCompile(EventTypePattern)
	refSourceRE    = regexp.MustCompile(SourcePattern)
)

func referenceDecode(d Decoder, b []byte) (Envelope, error) {
	maxBytes, maxDepth := d.MaxBytes, d.MaxDepth
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if len(b) > maxBytes {
		return Envelope{}, &DecodeError{
			Reason: fmt.Sprintf("input of %d bytes is over the %d-byte limit", len(b), maxBytes),
			Err:    ErrTooLarge,
		}
	}
	if refTooDeep(b, maxDepth) {
		return Envelope{}, &DecodeError{Reason: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	if !json.Valid(b) {
		var v struct{}
		err := json.Unmarshal(b, &v)
		if err == nil {
			err = fmt.Errorf("invalid JSON")
		}
		return Envelope{}, &DecodeError{Reason: "not valid JSON", Err: err}
	}
	i := refSkipSpace(b, 0)
	if b[i] != '{' {
		return Envelope{}, &DecodeError{Reason: "not a JSON object (got " + refJSONKind(b[i]) + ")"}
	}
	raws, err := refSplitObject(b, i)
	if err != nil {
		return Envelope{}, err
	}
	return raws.refEnvelope()
}

func refTooDeep(b []byte, max int) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = refStringEnd(b, i) - 1
		case '{', '[':
			depth++
			if depth > max {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

var refFieldIndex = func() map[string]fieldKey {
	m := make(map[string]fieldKey, 2*numFields)
	for f, names := range fieldNames {
		for sp, name := range names {
			if name != "" {
				m[name] = fieldKey{f, sp}
			}
		}
	}
	return m
}()

type refRawFields [numFields][2][]byte

func refSplitObject(b []byte, i int) (*refRawFields, error) {
	var raws refRawFields
	malformed := &DecodeError{Reason: "malformed object"}
	i = refSkipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return &raws, nil
	}
	for i < len(b) && b[i] == '"' {
		end := refStringEnd(b, i)
		if end > len(b) {
			return nil, malformed
		}
		rawKey := b[i+1 : end-1]
		key, ok := refFieldIndex[string(rawKey)]
		if !ok && bytes.IndexByte(rawKey, '\\') >= 0 {
			var s string
			if json.Unmarshal(b[i:end], &s) == nil {
				key, ok = refFieldIndex[s]
			}
		}
		i = refSkipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, malformed
		}
		i = refSkipSpace(b, i+1)
		vend := refValueEnd(b, i)
		if vend > len(b) || vend <= i {
			return nil, malformed
		}
		if ok {
			if raws[key.field][key.spelling] != nil {
				name := fieldNames[key.field][key.spelling]
				return nil, invalid(fieldNames[key.field][0], "duplicate key %q", name)
			}
			raws[key.field][key.spelling] = b[i:vend]
		}
		i = refSkipSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i = refSkipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return &raws, nil
		}
		break
	}
	return nil, malformed
}

func refSkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func refStringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b) + 1
}

func refValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b) + 1
	}
	switch b[i] {
	case '"':
		return refStringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = refStringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b) + 1
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

func refJSONKind(c byte) string {
	switch c {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func (r *refRawFields) refEnvelope() (Envelope, error) {
	var e Envelope
	var ok bool
	var err *ValidationError
	if e.EventID, ok, err = refPick(r, fEventID, refParseUUID); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("eventId", "required")
	}
	if e.EventType, ok, err = refPick(r, fEventType, refParseString); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("eventType", "required")
	}
	if e.AggregateID, ok, err = refPick(r, fAggregateID, refParseString); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("aggregateId", "required")
	}
	if e.OccurredAt, ok, err = refPick(r, fOccurredAt, refParseTime); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("occurredAt", "required")
	}
	if e.Source, ok, err = refPick(r, fSource, refParseString); err != nil {
		return Envelope{}, err
	} else if !ok {
		return Envelope{}, invalid("source", "required")
	}
	if e.DataVersion, _, err = refPick(r, fDataVersion, refParseString); err != nil {
		return Envelope{}, err
	}
	if e.DataVersion == "" {
		e.DataVersion = DefaultDataVersion
	}
	if e.CorrelationID, _, err = refPick(r, fCorrelationID, refParseString); err != nil {
		return Envelope{}, err
	}
	if e.CausationID, _, err = refPick(r, fCausationID, refParseString); err != nil {
		return Envelope{}, err
	}
	if e.Metadata, err = refParseObject("metadata", r[fMetadata][0]); err != nil {
		return Envelope{}, err
	}
	if e.Data, err = refParseObject("data", r[fData][0]); err != nil {
		return Envelope{}, err
	}
	if err := refValidateFields(e); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

func refPick[T comparable](r *refRawFields, f int, parse func(field string, raw []byte) (T, bool, *ValidationError)) (v T, ok bool, err *ValidationError) {
	name := fieldNames[f][0]
	var vals [2]T
	var present [2]bool
	for sp, raw := range r[f] {
		if raw == nil {
			continue
		}
		if vals[sp], present[sp], err = parse(name, raw); err != nil {
			return v, false, err
		}
	}
	switch {
	case present[0] && present[1] && vals[0] != vals[1]:
		return v, false, invalid(name, "%q and %q differ", fieldNames[f][0], fieldNames[f][1])
	case present[0]:
		return vals[0], true, nil
	}
	return vals[1], present[1], nil
}

func refParseString(field string, raw []byte) (string, bool, *ValidationError) {
	switch raw[0] {
	case 'n':
		return "", false, nil
	case '"':
	default:
		return "", false, invalid(field, "must be a string, got %s", refJSONKind(raw[0]))
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, &ValidationError{Field: field, Reason: "bad string: " + err.Error(), Err: err}
	}
	return s, true, nil
}

func refParseUUID(field string, raw []byte) (uuid.UUID, bool, *ValidationError) {
	s, ok, err := refParseString(field, raw)
	if !ok || err != nil {
		return uuid.Nil, false, err
	}
	if len(s) != 36 {
		return uuid.Nil, false, invalid(field, "not a UUID: %s", quote(s))
	}
	id, perr := uuid.Parse(s)
	if perr != nil {
		return uuid.Nil, false, invalid(field, "not a UUID: %s", quote(s))
	}
	return id, true, nil
}

func refParseTime(field string, raw []byte) (time.Time, bool, *ValidationError) {
	s, ok, err := refParseString(field, raw)
	if !ok || err != nil {
		return time.Time{}, false, err
	}
	t, perr := time.Parse(time.RFC3339, s)
	if perr != nil {
		if _, lerr := time.Parse("2006-01-02T15:04:05", s); lerr == nil {
			return time.Time{}, false, invalid(field, "missing time zone: %s", quote(s))
		}
		return time.Time{}, false, invalid(field, "not an RFC 3339 timestamp: %s", quote(s))
	}
	return normTime(t), true, nil
}

func refParseObject(field string, raw []byte) (json.RawMessage, *ValidationError) {
	if raw == nil || raw[0] == 'n' {
		return emptyObject(), nil
	}
	if raw[0] != '{' {
		return nil, invalid(field, "must be a JSON object, got %s", refJSONKind(raw[0]))
	}
	return bytes.Clone(raw), nil
}

func refValidateFields(e Envelope) *ValidationError {
	switch {
	case e.EventID == uuid.Nil:
		return invalid("eventId", "must not be the nil UUID")
	case e.EventType == "":
		return invalid("eventType", "must not be empty")
	case !refEventTypeRE.MatchString(e.EventType):
		return invalid("eventType", "%s does not match %s", quote(e.EventType), EventTypePattern)
	case e.AggregateID == "":
		return invalid("aggregateId", "must not be empty")
	case e.OccurredAt.IsZero():
		return invalid("occurredAt", "must be set")
	case normTime(e.OccurredAt).Before(minTime) || normTime(e.OccurredAt).After(maxTime):
		return invalid("occurredAt", "%s is outside years 0001 to 9999 UTC", e.OccurredAt.UTC().Format(time.RFC3339Nano))
	case e.Source == "":
		return invalid("source", "must not be empty")
	case !refSourceRE.MatchString(e.Source):
		return invalid("source", "%s does not match %s", quote(e.Source), SourcePattern)
	}
	return nil
}
