package deadletter

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Source is where a dead letter came from: the dead_letters.source column.
type Source string

// Sources (DESIGN.md §4).
const (
	// SourceKafka: a record of a Kafka DLQ topic.
	SourceKafka Source = "kafka"
	// SourceRabbitMQ: a message of a RabbitMQ dead-letter queue.
	SourceRabbitMQ Source = "rabbitmq"
)

// Valid reports whether s is one of the sources the schema allows.
func (s Source) Valid() bool { return s == SourceKafka || s == SourceRabbitMQ }

// Status is a dead letter's state in the admin workflow.
type Status string

// Statuses (DESIGN.md §4, §6).
const (
	// StatusPending: waiting for an operator; the only status that can be
	// replayed or discarded. New dead letters start here.
	StatusPending Status = "pending"
	// StatusReplayed: sent back; a new arrival makes it pending again.
	StatusReplayed Status = "replayed"
	// StatusDiscarded: an operator gave up on it; a new arrival counts
	// (death_count, last_seen_at) but leaves it discarded.
	StatusDiscarded Status = "discarded"
)

// ReasonUnparseable is the reason of a dead letter that could not be parsed
// (no dead-lettering headers, headers of the wrong types) and was stored
// raw, and of one stored in reduced form because PostgreSQL rejected its
// content.
const ReasonUnparseable = "unparseable"

// Limits on the text columns, in bytes. Longer values are cut at a UTF-8
// boundary and end in "…". origin and event_type are indexed, and a btree
// index entry must stay under about 2700 bytes.
const (
	MaxOriginBytes       = 512
	MaxEventTypeBytes    = 255
	MaxReasonBytes       = 255
	MaxErrorMessageBytes = 16 << 10
	MaxDeliveryBytes     = 512
)

// MaxDeliveries is how many delivery markers a row remembers (newest
// first, in origin_detail "deliveries") to recognise repeated receipts.
const MaxDeliveries = 16

// DeadLetter is one received dead letter, as [Store.Record] stores it.
type DeadLetter struct {
	// EventID is the event's id from the message's headers or properties,
	// else its body; uuid.Nil when it has none. It decides the identity and
	// the outbox row that is flagged.
	EventID uuid.UUID
	// Source is SourceKafka or SourceRabbitMQ. Required.
	Source Source
	// Origin is the queue that dead-lettered the message (RabbitMQ) or its
	// original topic (Kafka). Empty is stored as "unknown".
	Origin string
	// OriginDetail is stored as the origin_detail JSON object; strings are
	// cleaned like the text columns. Record adds "deliveries".
	OriginDetail map[string]any
	// Reason is e.g. "rejected" or the Kafka stage; empty means
	// ReasonUnparseable.
	Reason string
	// ErrorMessage is the human-readable cause; it is also written to the
	// outbox row's error_message. Empty is stored as NULL.
	ErrorMessage string
	// EventType is the event's type, when known; empty is stored as NULL.
	EventType string
	// Headers is the headers column, a JSON object (see package
	// amqpheaders and [KafkaHeaders]); nil means {}.
	Headers json.RawMessage
	// Key is the Kafka record key; nil is stored as NULL.
	Key []byte
	// Body is the message body as received; nil is stored as empty.
	Body []byte
	// Delivery identifies this receipt of the message, e.g. the DLQ topic,
	// partition and offset. Empty means the receipt can not be recognised
	// when it repeats.
	Delivery string
	// MaybeRepeated says this receipt may repeat one already recorded (a
	// Kafka record, an AMQP delivery with the redelivered flag). Only then
	// is Delivery compared with the row's remembered markers.
	MaybeRepeated bool
}

// Recorded is what [Store.Record] did with one dead letter.
type Recorded struct {
	// ID is the row's id; zero for a Duplicate.
	ID int64
	// DeathCount is the row's death_count after this receipt; zero for a
	// Duplicate.
	DeathCount int
	// Status is the row's status after this receipt; empty for a Duplicate.
	Status Status
	// Inserted: the dead letter was new, a row was added.
	Inserted bool
	// Duplicate: a repeated receipt of a delivery already recorded (same
	// Delivery marker, MaybeRepeated set); nothing was changed.
	Duplicate bool
	// OutboxFlagged: this receipt found the event's outbox row and marked it
	// failed.
	OutboxFlagged bool
	// Degraded: PostgreSQL rejected the dead letter's content, so it was
	// stored in reduced form with reason ReasonUnparseable.
	Degraded bool
}

// Item is one row of dead_letters; its fields are the columns of DESIGN.md
// §4 (OriginDetail and Headers as stored JSON, Key nil for NULL), with NULL
// text and timestamps as zero values.
type Item struct {
	ID           int64
	EventID      uuid.UUID // uuid.Nil when NULL
	Source       Source
	Origin       string
	OriginDetail json.RawMessage
	Reason       string
	ErrorMessage string // "" when NULL
	EventType    string // "" when NULL
	DeathCount   int
	Headers      json.RawMessage
	Key          []byte // nil when NULL
	Body         []byte
	FirstSeenAt  time.Time
	LastSeenAt   time.Time
	Status       Status
	ReplayCount  int
	ReplayedAt   time.Time // zero when NULL
	// DiscardReason is "" when NULL.
	DiscardReason string
	OutboxFound   bool
	// ClaimedAt is when a replay claimed the dead letter (it is being
	// published); zero when unclaimed.
	ClaimedAt time.Time
}

// Errors of the read and update methods.
var (
	// ErrNotFound is returned by Get, MarkReplayed and MarkDiscarded for an
	// id with no row.
	ErrNotFound = errors.New("dead letter not found")
	// ErrNotPending is returned (wrapped with the current status) by
	// MarkReplayed and MarkDiscarded for a dead letter that is not pending.
	ErrNotPending = errors.New("dead letter is not pending")
	// ErrClaimed is returned (wrapped) by Claim, MarkReplayed and
	// MarkDiscarded for a pending dead letter that a replay has claimed and
	// is publishing.
	ErrClaimed = errors.New("dead letter is being replayed")
	// ErrInvalidFilter is returned (wrapped with the reason) by List for a
	// filter out of range or a cursor it did not issue.
	ErrInvalidFilter = errors.New("invalid dead-letter filter")
)

// CleanText returns s as a PostgreSQL text value accepts it and cut to at
// most max bytes (no limit when max <= 0): invalid UTF-8 sequences and NUL
// bytes become U+FFFD, and a cut value ends in "…".
func CleanText(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if max <= 0 || len(s) <= max {
		return s
	}
	const ellipsis = "…"
	mark := ellipsis
	cut := max - len(ellipsis)
	if cut < 0 {
		cut, mark = max, ""
	}
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
