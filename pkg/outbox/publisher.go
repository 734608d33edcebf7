package outbox

import (
	"context"
	"errors"
)

// Record is one Kafka record as the [Relay] hands it to a [Publisher]: the
// format of DESIGN.md §3.
type Record struct {
	// Topic is the destination topic.
	Topic string
	// Key is the aggregateId. Records with the same key must go to the same
	// partition.
	Key []byte
	// Value is the envelope JSON.
	Value []byte
	// Headers are UTF-8 headers: id, eventType, aggregateType when set, and
	// the writer's trace context when stored.
	Headers []Header
}

// Header is one Kafka record header.
type Header struct {
	// Key is the header's name, e.g. "id".
	Key string
	// Value is the header's UTF-8 value.
	Value []byte
}

// Publisher writes records to Kafka. The Relay calls Publish from one
// goroutine at a time and never passes two records with the same key in one
// call, so an implementation may send a call's records in any order and in
// parallel.
//
// Publish blocks until Kafka acknowledged (with acks=all) or rejected every
// record, or ctx ends. It returns nil when every record was acknowledged;
// otherwise a slice with one entry per record: nil for an acknowledged
// record, the reason for any other. A record reported as failed may still
// reach Kafka (a request that timed out on the client but not on the
// broker): the Relay sends it again before any later record of its key, so
// the first delivery stays in order, and consumers drop the duplicate by
// event id. An error that reports Permanent() == true (see [IsPermanent])
// says the record can never be written, e.g. it is larger than the broker
// accepts; the Relay then marks its row failed instead of retrying it.
//
// outboxsarama.Publisher is the implementation for production use.
type Publisher interface {
	Publish(ctx context.Context, records []Record) []error
}

// IsPermanent reports whether err, or an error it wraps, has a Permanent()
// bool method that returns true: retrying the same operation can not
// succeed.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
