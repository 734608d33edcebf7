// Package outbox is the transactional outbox of messagekit: producer services
// write events in the same PostgreSQL transaction as their business data,
// and Debezium or the [Relay] publishes them to Kafka, at least once and in
// order per aggregate (DESIGN.md §2–4).
//
// # Writing
//
// [Writer.Add] inserts envelopes into outbox_events through the caller's
// transaction (anything with pgx's Exec: pgx.Tx, a pool, a connection): if
// the transaction commits every event exists, if it rolls back none does.
// Events are validated before anything is sent, so a bad event fails with
// the field named and leaves the transaction usable; any number of events
// take one statement and one round trip; [Writer.Queue] puts that statement
// into the caller's pgx.Batch instead, to share a round trip with the
// caller's own statements. The caller's trace context goes into the row's
// headers (and the traceparent/tracestate columns, for Debezium).
//
// # Publishing
//
// With Debezium, deployments/debezium/ holds the connector configuration;
// use [ReadStats] with a slot name to watch its replication slot. Without
// it, run a [Relay] (one or more instances) with a [Publisher], such as
// outboxsarama.Publisher. The Relay emits exactly the record Debezium's
// router does: key aggregate_id, value the payload column as PostgreSQL
// renders the jsonb (so the same bytes either way; jsonb orders keys and
// spaces values its own way, which no envelope reader minds), headers id,
// eventType, aggregateType when set, and the stored trace context.
//
// # Order
//
// The Relay publishes a row only once every transaction that could still
// add an earlier row has ended: it reads below the oldest running
// transaction of its database (pg_snapshot_xmin of the current snapshot,
// less the transactions pg_stat_activity places in other databases) and in
// (transaction_id, id) order. Per aggregate, events
// therefore go out in the order of their writing transactions' ids, then of
// insertion. That is the order in which they were written whenever writers
// of one aggregate serialise on it before they get a transaction id, which
// PostgreSQL assigns at a transaction's first write or row lock. Serialise
// on a transaction-level advisory lock of the aggregate
// (pg_advisory_xact_lock), taken first: it is waited for without a
// transaction id. A row lock (SELECT … FOR UPDATE, or an UPDATE) of the
// aggregate's row is not enough once two writers wait for it: a waiter
// that follows the row's update chain is given its transaction id while it
// still waits, and the waiters get the lock in any order, so the later
// writer can hold the older id and go first. So does a transaction that
// wrote something else first, then waited for another writer of the same
// aggregate. Debezium, which follows the WAL's commit order, has neither
// caveat.
//
// A long transaction of the outbox's database that has written anything
// (anything at all: the Relay can not tell whether it will add outbox rows)
// holds publishing back until it ends; the Relay looks again every 50 ms
// meanwhile. Keep long writing transactions out of that database, or use
// Debezium. Transactions of other databases on the same server do not hold
// it back.
//
// The Relay wakes on a notification from the outbox's insert trigger, which
// costs every writing transaction a serialised commit: see [Relay] for when
// to disable it and poll instead.
//
// Records of one aggregate are sent one at a time, each after Kafka
// acknowledged the previous: a hot aggregate is published at one Kafka round
// trip per event, while different aggregates go in parallel.
//
// # Housekeeping
//
// [ReadStats] reports pending and failed counts, the oldest pending age and,
// with Debezium, the replication slot's lag. [Prune] deletes old published
// (optionally failed) rows in short batches, from this module's outbox table
// or from a Python messagekit producer's, which has no id column. Both work
// on any connection or pool and may run on every instance.
package outbox
