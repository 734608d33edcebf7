// Package kafkaconsumer runs an idempotent consumer on Kafka topics in a
// sarama consumer group: each event's handler runs in its dedup transaction
// (package dedup) and a record's offset is marked only after that
// transaction committed.
//
// # Delivery semantics
//
// Each claimed partition is handled in order, up to [Config.MaxBatch]
// records per transaction. The dedup key is the envelope's eventId; when the
// record has an id header (DESIGN.md §3) it must be a UUID equal to the
// eventId. Offsets are marked per partition in order, a record's only
// after its transaction committed or its dead letter was acknowledged by
// Kafka, so after a crash or a rebalance the unmarked records are consumed
// again and those already committed are recognised as duplicates.
//
// Poison goes to a dead-letter topic ([Config.DLQTopic], else
// "<topic>.dlq") in the Kafka Connect format of DESIGN.md §3: the original
// key, value, headers and timestamp, plus the __connect.errors.* headers
// built by [contracts.DeadLetter]. The stage is DECODE for a value that is
// not a JSON object, VALIDATE for an object that breaks the envelope rules,
// has a bad id header or whose data does not fit the handler's type, and
// TASK_PUT ([contracts.StageTaskPut]) when the handler failed for good: an
// error that says it is permanent (an unknown event type without
// [dedup.Router.Fallback] included) or a transient one that outlasted
// [Config.Retry]. The connector name is the consumer name, not
// messagekit-bridge, so the bookkeeper can tell who gave up; the task id is
// "0" and the class name this package's Consumer type. Headers of an
// earlier death are replaced, not repeated.
//
// A topic usually carries more event types than one consumer handles: set
// the Router's Fallback to [dedup.Ignore] to skip the others instead of
// dead-lettering them.
package kafkaconsumer
