// Package deadletter is the dead-letter store of DESIGN.md §4: the
// dead_letters table, written by the dlq-bookkeeper and read and updated by
// the admin API.
//
// [Store.Record] stores a batch of received dead letters in one transaction.
// A dead letter's identity is (source, origin, event id), or (source, origin,
// sha-256 of the body) when it has no event id: a second arrival updates the
// existing row (death_count+1, last_seen_at, the latest reason, headers and
// body, status back to pending if it was replayed) instead of adding one. In
// the same statement, a dead letter with an event id flags the producer's
// outbox_events row failed (failed, failed_at, error_message,
// attempt_count+1) and records in outbox_found whether there was one.
//
// Record also recognises a repeated receipt of one delivery — a DLQ message
// redelivered because the process died after the commit and before the ack
// — by the delivery marker the caller passes ([DeadLetter.Delivery]); such a
// receipt changes nothing and is reported as [Recorded.Duplicate]. The last
// [MaxDeliveries] markers of a row are kept in its origin_detail under
// "deliveries".
//
// Text that PostgreSQL would refuse (invalid UTF-8, NUL bytes, values too
// long for an index) is cleaned before it is written, and a dead letter whose
// content PostgreSQL still rejects is stored in a reduced form (raw body and
// key, reason [ReasonUnparseable], the database's error in error_message)
// rather than failing its batch: Record fails only when the database does.
//
// [Store.Get], [Store.List], [Store.MarkReplayed] and [Store.MarkDiscarded]
// serve the admin API. A Store is safe for concurrent use.
package deadletter
