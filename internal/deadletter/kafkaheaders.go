package deadletter

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// KafkaHeader is one Kafka record header. A nil Value is a null header
// value, distinct from an empty one.
type KafkaHeader struct {
	Key   []byte
	Value []byte
}

// kafkaHeaderJSON is one header in the headers column. Exactly one of
// Key/KeyBase64 is set, and at most one of Value/ValueBase64 (neither: a null
// value).
type kafkaHeaderJSON struct {
	Key         *string `json:"key,omitempty"`
	KeyBase64   *string `json:"key_base64,omitempty"`
	Value       *string `json:"value"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

type kafkaHeadersJSON struct {
	Headers []kafkaHeaderJSON `json:"headers"`
}

// EncodeKafkaHeaders renders a Kafka record's headers for the headers column,
// keeping their order and repeats, losslessly:
//
//	{"headers":[{"key":"id","value":"9b2c…"},{"key":"bin","value":null,"value_base64":"AAE="},{"key":"none","value":null}]}
//
// A key or value that is valid UTF-8 without NUL bytes is a JSON string
// ("key", "value"); any other is standard base64 ("key_base64",
// "value_base64", with "value" null); a null value is "value": null alone.
func EncodeKafkaHeaders(hs []KafkaHeader) json.RawMessage {
	out := kafkaHeadersJSON{Headers: make([]kafkaHeaderJSON, 0, len(hs))}
	for _, h := range hs {
		var j kafkaHeaderJSON
		if s, ok := jsonText(h.Key); ok {
			j.Key = &s
		} else {
			b := base64.StdEncoding.EncodeToString(h.Key)
			j.KeyBase64 = &b
		}
		if h.Value != nil {
			if s, ok := jsonText(h.Value); ok {
				j.Value = &s
			} else {
				b := base64.StdEncoding.EncodeToString(h.Value)
				j.ValueBase64 = &b
			}
		}
		out.Headers = append(out.Headers, j)
	}
	raw, err := json.Marshal(out)
	if err != nil { // unreachable: strings and slices only
		return json.RawMessage(`{"headers":[]}`)
	}
	return raw
}

// DecodeKafkaHeaders is the inverse of EncodeKafkaHeaders. It returns an
// error for JSON of another shape or invalid base64.
func DecodeKafkaHeaders(raw json.RawMessage) ([]KafkaHeader, error) {
	var in kafkaHeadersJSON
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("kafka headers: %w", err)
	}
	hs := make([]KafkaHeader, 0, len(in.Headers))
	for i, j := range in.Headers {
		var h KafkaHeader
		switch {
		case j.Key != nil && j.KeyBase64 == nil:
			h.Key = []byte(*j.Key)
		case j.KeyBase64 != nil && j.Key == nil:
			k, err := base64.StdEncoding.DecodeString(*j.KeyBase64)
			if err != nil {
				return nil, fmt.Errorf("kafka header %d: key_base64: %w", i, err)
			}
			h.Key = k
		default:
			return nil, fmt.Errorf("kafka header %d: want exactly one of key and key_base64", i)
		}
		switch {
		case j.Value != nil && j.ValueBase64 != nil:
			return nil, errors.New("kafka header: both value and value_base64")
		case j.Value != nil:
			h.Value = []byte(*j.Value)
		case j.ValueBase64 != nil:
			v, err := base64.StdEncoding.DecodeString(*j.ValueBase64)
			if err != nil {
				return nil, fmt.Errorf("kafka header %d: value_base64: %w", i, err)
			}
			h.Value = v
		}
		if h.Value == nil && (j.Value != nil || j.ValueBase64 != nil) {
			h.Value = []byte{}
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// jsonText returns b as a string when jsonb can hold it verbatim.
func jsonText(b []byte) (string, bool) {
	s := string(b)
	return s, utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}
