package bookkeeper

import (
	"bytes"
	"encoding/json"
	"log/slog"

	"github.com/google/uuid"

	"github.com/firstunicorn/messagekit-go/internal/deadletter"
	"github.com/firstunicorn/messagekit-go/pkg/contracts"
)

// Letter is one dead letter a source received, ready to be recorded.
type Letter struct {
	deadletter.DeadLetter
	// Attrs name the delivery in log lines, e.g. the DLQ topic, partition
	// and offset, or the DLQ queue and delivery tag.
	Attrs []slog.Attr
	// Problem, when not nil, says what of the message could not be parsed
	// (it is stored raw, with the best reason available); it is logged and
	// counted as an unparseable dead letter.
	Problem error
}

// EventID returns the event id s names, accepting only the canonical
// 36-character UUID form (as the envelope does) and not the nil UUID.
func EventID(s string) (uuid.UUID, bool) {
	if len(s) != 36 {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(s)
	if err != nil || id == uuid.Nil {
		return uuid.Nil, false
	}
	return id, true
}

// EventFromBody returns the event id and type a message body names, or
// uuid.Nil and "". A valid envelope gives both; a JSON object that breaks
// other envelope rules still gives its eventId (or event_id) when that is
// a UUID, and its eventType (or event_type) when that is a string, so that
// the outbox row of an event dead-lettered for failing validation is
// flagged too. Bodies over contracts.DefaultMaxBytes are not read.
func EventFromBody(body []byte) (uuid.UUID, string) {
	if len(body) == 0 || len(body) > contracts.DefaultMaxBytes {
		return uuid.Nil, ""
	}
	if env, err := contracts.Decode(body); err == nil {
		return env.EventID, env.EventType
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return uuid.Nil, ""
	}
	var loose struct {
		EventID        json.RawMessage `json:"eventId"`
		EventIDSnake   json.RawMessage `json:"event_id"`
		EventType      json.RawMessage `json:"eventType"`
		EventTypeSnake json.RawMessage `json:"event_type"`
	}
	if json.Unmarshal(trimmed, &loose) != nil {
		return uuid.Nil, ""
	}
	id, _ := EventID(jsonString(loose.EventID, loose.EventIDSnake))
	return id, jsonString(loose.EventType, loose.EventTypeSnake)
}

// jsonString returns the first of raws that is a JSON string, decoded.
func jsonString(raws ...json.RawMessage) string {
	for _, raw := range raws {
		var s string
		if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// knownReasons are the reasons metrics label by name; any other is "other",
// so that a hostile header can not create label values without bound.
var knownReasons = map[string]bool{
	deadletter.ReasonUnparseable: true,
	// RabbitMQ x-death reasons.
	"rejected": true, "expired": true, "maxlen": true, "delivery_limit": true,
	// Stages of the bridge and pkg/dedup.
	string(contracts.StageDecode): true, string(contracts.StageValidate): true,
	string(contracts.StageRecordTooLarge): true, string(contracts.StageAMQPNack): true,
	string(contracts.StageAMQPUnroutable): true, "TASK_PUT": true,
	// Other Kafka Connect stages.
	"KEY_CONVERTER": true, "VALUE_CONVERTER": true, "HEADER_CONVERTER": true,
	"TRANSFORMATION": true, "TASK_POLL": true, "KAFKA_PRODUCE": true, "KAFKA_CONSUME": true,
}

// ReasonLabel returns reason as a metrics label: itself when it is a known
// RabbitMQ reason, bridge or Kafka Connect stage, or "unparseable"; "other"
// otherwise.
func ReasonLabel(reason string) string {
	if knownReasons[reason] {
		return reason
	}
	return "other"
}
